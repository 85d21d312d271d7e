import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { buildView, stepViews } from './view.ts'
import { fetchRef, materialize } from './materialize.ts'
import { toJsonValue } from '../values/codec.ts'
import type { RequestDone, RequestStarted } from '../../protocols/events/index.ts'
import type { RequestView, StepView } from './types.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/** What a peer keeps of a finished request, on disk, until the retention ends: enough to answer status and outputs. */
export interface FinishedRecord {
  started: RequestStarted
  done?: RequestDone
  status: 'ok' | 'failed'
  error?: string
  steps: StepView[]
  finishedAt: number
}

const READ_TIMEOUT_MS = 30_000

/** One row of the request list. */
export interface RequestSummary {
  requestId: string
  workflow: string
  status: string
  startedAt: number
  mode: string
  store: string
  submitter: string
  finishedAt?: number
  durationMs?: number
}

/** Reading requests: live state while held, the durable record after (or after a restart). */
export class SchedulerReader {
  private readonly records = new Map<string, FinishedRecord>()
  private readonly dir?: string

  constructor (private readonly sched: DScheduler) {
    this.dir = sched.init.recordsDir === '' ? undefined : sched.init.recordsDir
  }

  /** Loads the records of requests finished within the retention (a restarted peer still answers them). */
  async loadRecords (): Promise<void> {
    if (this.dir === undefined) return
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const cutoff = Date.now() - this.sched.init.retentionMs
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.json')) continue
      try {
        const rec = JSON.parse(await readFile(join(this.dir, name), 'utf8'), reviveBytes) as FinishedRecord
        if (rec.finishedAt < cutoff) { await rm(join(this.dir, name), { force: true }); continue }
        this.records.set(rec.started.request, rec)
      } catch (err) {
        this.sched.log.error('request record %s unreadable, ignored: %s', name, (err as Error).message)
      }
    }
  }

  record (request: string): FinishedRecord | undefined { return this.records.get(request) }

  hasRecords (): boolean { return this.records.size > 0 }

  async persist (t: Tracked): Promise<void> {
    const s = t.state
    if (s === undefined) return
    const rec: FinishedRecord = { started: s.started, status: this.statusOf(t) === 'ok' ? 'ok' : 'failed', steps: stepViews(s), finishedAt: t.finishedAt ?? Date.now() }
    if (t.done !== undefined) rec.done = t.done
    const error = t.done?.error ?? s.firstFailure()
    if (rec.status === 'failed' && error !== undefined) rec.error = error
    this.records.set(s.id, rec)
    if (this.dir === undefined) return
    const file = join(this.dir, `${encodeURIComponent(s.id)}.json`)
    const text = JSON.stringify(rec, replaceBytes)
    // the directory is made once, not per request (a mkdir per request on every peer), and again if it went
    for (let attempt = 0; ; attempt++) {
      try {
        await (this.dirMade ??= mkdir(this.dir, { recursive: true, mode: 0o700 }))
        await writeFile(`${file}.tmp`, text, { mode: 0o600 })
        break
      } catch (err) {
        this.dirMade = undefined
        if (attempt > 0 || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    await rename(`${file}.tmp`, file)
  }

  private dirMade?: Promise<unknown>

  sweepRecords (cutoff: number): void {
    for (const [id, rec] of this.records) if (rec.finishedAt < cutoff) this.dropRecord(id)
  }

  /** The retention of a finished request ended: its record goes, from memory and disk. */
  dropRecord (request: string): void {
    if (!this.records.delete(request)) return
    if (this.dir !== undefined) void rm(join(this.dir, `${encodeURIComponent(request)}.json`), { force: true }).catch(() => {})
  }

  has (request: string): boolean { return this.sched.requests.get(request)?.state !== undefined || this.records.has(request) }

  /** Finished only once this peer's end of it is done too (its runners stopped, its listeners told). */
  statusOf (t: Tracked): 'running' | 'ok' | 'failed' {
    if (t.finishedAt === undefined) return 'running'
    if (t.done !== undefined) return t.done.status
    return t.state?.outcome().status === 'ok' ? 'ok' : 'failed'
  }

  /** Requests held here, newest first: live state, else the finished record. */
  list (): RequestSummary[] {
    const out = new Map<string, RequestSummary>()
    const summary = (started: RequestStarted, status: string, end: number | undefined): RequestSummary => ({
      requestId: started.request,
      workflow: started.workflow,
      status,
      startedAt: started.ts,
      mode: started.mode,
      store: started.store,
      submitter: started.submitter,
      ...(end !== undefined ? { finishedAt: end, durationMs: Math.max(0, end - started.ts) } : {})
    })
    for (const [id, rec] of this.records) out.set(id, summary(rec.started, rec.status, rec.done?.ts ?? rec.finishedAt))
    for (const [id, t] of this.sched.requests) {
      if (t.state === undefined) continue
      out.set(id, summary(t.state.started, this.statusOf(t), t.done?.ts ?? t.finishedAt))
    }
    return [...out.values()].sort((a, b) => b.startedAt - a.startedAt)
  }

  /** Resolves when the request finished (ok or failed) as this peer sees it. */
  async waitFinished (request: string, signal?: AbortSignal): Promise<void> {
    const finished = (): boolean => this.sched.requests.get(request)?.finishedAt !== undefined || (this.records.has(request) && !this.sched.requests.has(request))
    while (!finished()) {
      await new Promise<void>((resolve, reject) => {
        const onFinished = (ev: CustomEvent<{ request: string }>): void => { if (ev.detail.request === request) { cleanup(); resolve() } }
        const onAbort = (): void => { cleanup(); reject(signal?.reason) }
        const cleanup = (): void => { this.sched.removeEventListener('scheduler:request-finished', onFinished); signal?.removeEventListener('abort', onAbort) }
        this.sched.addEventListener('scheduler:request-finished', onFinished)
        signal?.addEventListener('abort', onAbort, { once: true })
        if (finished()) { cleanup(); resolve() }
      })
    }
  }

  async view (request: string): Promise<RequestView | undefined> {
    const store = this.sched.c.store
    const opts = { signal: AbortSignal.timeout(READ_TIMEOUT_MS) }
    const t = this.sched.requests.get(request)
    if (t?.state !== undefined) {
      return buildView(t.state, this.statusOf(t), t.done, t.finishedAt, async r => materialize(store, r, opts), async ref => fetchRef(store, ref, opts))
    }
    const rec = this.records.get(request)
    if (rec === undefined) return undefined
    const outputs: Record<string, unknown> = {}
    if (rec.status === 'ok') {
      for (const [name, ref] of Object.entries(rec.done?.outputs ?? {})) outputs[name] = ref === null ? null : toJsonValue(await fetchRef(store, ref, opts))
    }
    const end = rec.done?.ts ?? rec.finishedAt
    const view: RequestView = {
      requestId: request,
      workflow: rec.started.workflow,
      mode: rec.started.mode,
      store: rec.started.store,
      submitter: rec.started.submitter,
      status: rec.status,
      outputs,
      steps: rec.steps,
      totalMs: Math.max(0, end - rec.started.ts)
    }
    if (rec.error !== undefined) view.error = rec.error
    return view
  }
}

/** Inline values are bytes: kept as base64 in the JSON record. */
function replaceBytes (_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? { $bytes: Buffer.from(value).toString('base64') } : value
}

function reviveBytes (_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { $bytes?: unknown }).$bytes === 'string' && Object.keys(value).length === 1) {
    return new Uint8Array(Buffer.from((value as { $bytes: string }).$bytes, 'base64'))
  }
  return value
}
