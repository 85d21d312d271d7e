export { SubmitError } from './submission.ts'
import { TypedEventEmitter } from '@libp2p/interface'
import { randomUUID } from 'node:crypto'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { DflowEvent, RequestDone, RequestEvent, RequestStarted, ValueRef } from '../../protocols/events/index.ts'
import type { AwaitablePush, DStore } from '../dstore/types.ts'
import type { EventBus } from './bus.ts'
import { materialize, fetchRef } from './materialize.ts'
import { evaluateConditions } from './conditions.ts'
import { finalOutputs } from './completion.ts'
import { checkRequestId, startRequest } from './submission.ts'
import { newTracked, type Tracked } from './tracked.ts'
import { rankCandidates } from './placement.ts'
import { claimable, consumersOf, localityBytes, nextAttempt, placementKey, winnerOf, type ClaimRules } from './claims.ts'
import { instanceKey, RequestState } from './request-state.ts'
import { InstanceRunner, prewarmModules, type RunnerHost } from './runner.ts'
import { buildView } from './view.ts'
import type { FunctionPool, LoadedWorkflow, Membership, RequestView, SchedulerInit, SubmitOptions, WorkflowLoader } from './types.ts'
import { CID } from 'multiformats/cid'

export interface SchedulerEvents {
  'scheduler:event': CustomEvent<RequestEvent>
  'scheduler:request-finished': CustomEvent<{ request: string, status: 'ok' | 'failed' }>
  'scheduler:log': CustomEvent<{ request: string, step: string, index: number | null, peer: string, line: string }>
}

export interface SchedulerComponents {
  self: string
  bus: EventBus
  store: DStore & Partial<AwaitablePush>
  pool: FunctionPool
  loader: WorkflowLoader
  membership: Membership
  logger: ComponentLogger
  /**
   * Called after a request-started event is published and awaited before `submit` answers: makes the request
   * survive its submitter (hand the event and the inputs to other peers directly). None on an embedded peer.
   */
  secureRequest?: (started: RequestStarted) => Promise<void>
}

/**
 * DScheduler: every peer runs one. It hears every request's events, keeps each request's state, claims the
 * step instances it ranks first for (data locality, then rendezvous hashing), pre-warms and fires them
 * (dataflow) or starts them when their predecessors returned (control), and publishes what they produce.
 */
export class DScheduler extends TypedEventEmitter<SchedulerEvents> {
  readonly self: string
  private readonly c: SchedulerComponents
  private readonly init: Required<SchedulerInit>
  private readonly log: Logger
  private readonly requests = new Map<string, Tracked>()
  private sweeper?: NodeJS.Timeout
  private leaseCheck?: NodeJS.Timeout
  private readonly claimRules: ClaimRules
  private readonly runnerHost: RunnerHost
  /** counters for /v1/metrics/scheduler (chaos and bench read them) */
  readonly metrics = { claims: 0, takeovers: 0, reruns: 0, rereplications: 0, requestsSeen: 0, requestsFinished: 0 }

  constructor (components: SchedulerComponents, init: SchedulerInit) {
    super()
    this.c = components
    this.self = components.self
    this.init = { claimsPerSlot: 4, claimBackoffMs: 300, retentionMs: 3_600_000, leaseMs: 3000, ...init }
    this.log = components.logger.forComponent('dflow:dscheduler')
    this.claimRules = { membership: components.membership, leaseMs: this.init.leaseMs }
    this.runnerHost = this.makeRunnerHost()
  }

  async start (): Promise<void> {
    this.c.bus.onEvent(ev => { this.onEvent(ev) })
    this.sweeper = setInterval(() => { this.sweep() }, 60_000)
    this.sweeper.unref()
    // leases lapse without any event announcing it: look again now and then
    this.leaseCheck = setInterval(() => { this.repumpAll() }, Math.max(100, this.init.leaseMs / 2))
    this.leaseCheck.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweeper)
    clearInterval(this.leaseCheck)
    for (const t of this.requests.values()) {
      clearTimeout(t.timer)
      for (const r of t.runners.values()) r.abort('peer stopping')
      for (const w of t.waiters) w()
    }
    this.requests.clear()
  }

  // ---- submission ----------------------------------------------------------------------------------

  async submit (opts: SubmitOptions): Promise<string> {
    const id = checkRequestId(opts.requestId ?? randomUUID())
    if (this.requests.get(id)?.state !== undefined) return id
    const loaded = await this.c.loader.load(opts.workflow, [this.self])
    const started = await startRequest(id, opts, loaded.workflow, this.c.store, this.self)
    await this.c.bus.publish(started)
    await this.c.secureRequest?.(started)
    return id
  }

  async cancel (request: string, reason = 'cancelled'): Promise<boolean> {
    const t = this.requests.get(request)
    if (t?.state === undefined || t.done !== undefined) return false
    await this.c.bus.publish({ type: 'request-cancelled', from: this.self, ts: Date.now(), request, reason })
    return true
  }

  // ---- events --------------------------------------------------------------------------------------

  private tracked (request: string): Tracked {
    let t = this.requests.get(request)
    if (t === undefined) {
      t = newTracked()
      this.requests.set(request, t)
    }
    return t
  }

  /** An event that came another way than the bus (a request-started handed over by its submitter). */
  ingest (ev: RequestEvent): void {
    if (ev.type === 'request-started' && this.requests.get(ev.request)?.loaded !== undefined) return
    this.onEvent(ev)
  }

  private onEvent (ev: DflowEvent): void {
    if (ev.type === 'heartbeat') return
    const t = this.tracked(ev.request)
    t.events.push(ev)
    this.safeDispatch('scheduler:event', ev)
    if (ev.type === 'request-started') {
      if (t.state !== undefined || t.loaded !== undefined) return
      void this.load(t, ev)
      return
    }
    if (t.state === undefined) { t.early.push(ev); return }
    this.apply(t, ev)
  }

  private async load (t: Tracked, started: RequestStarted): Promise<void> {
    try {
      t.loaded = await this.c.loader.load(started.workflow, [started.submitter, started.from])
    } catch (err) {
      this.log.error('request %s: cannot load workflow %s: %s', started.request, started.workflow, (err as Error).message)
      return
    }
    t.state = new RequestState(t.loaded.workflow, started)
    this.metrics.requestsSeen++
    if (started.deadlineMs !== undefined) {
      const left = started.ts + started.deadlineMs - Date.now()
      setTimeout(() => {
        if (t.done === undefined && t.state !== undefined && t.state.fatal === undefined) {
          t.state.fatal = `deadline of ${started.deadlineMs} ms exceeded`
          this.pump(started.request)
        }
      }, Math.max(0, left)).unref()
    }
    if (started.mode === 'dataflow') prewarmModules(this.c.pool, t.loaded, this.init.slots)
    for (const ev of t.early.splice(0)) this.apply(t, ev)
    this.pump(started.request)
  }

  private apply (t: Tracked, ev: RequestEvent): void {
    const s = t.state
    if (s === undefined) return
    switch (ev.type) {
      case 'step-claimed': {
        if (s.workflow.steps[ev.step] === undefined) return
        const rec = s.instance(ev.step, ev.index)
        const prev = rec.claims.get(ev.from)
        if (prev === undefined || ev.attempt > prev.attempt || ev.incarnation > prev.incarnation) rec.claims.set(ev.from, { attempt: ev.attempt, incarnation: ev.incarnation })
        break
      }
      case 'output-ready': if (this.known(s, ev.step, ev.output)) s.recordOutput(ev.step, ev.index, ev.output, ev.value); break
      case 'element-posted': if (this.known(s, ev.step, ev.output)) s.recordElement(ev.step, ev.index, ev.output, ev.element, ev.value); break
      case 'step-done': if (s.workflow.steps[ev.step] !== undefined) s.recordDone(ev); break
      case 'step-failed': if (s.workflow.steps[ev.step] !== undefined) s.recordFailed(ev.step, ev.index, ev.error); break
      case 'request-cancelled': s.fatal ??= `cancelled: ${ev.reason}`; break
      case 'request-done': t.done ??= ev; break
      case 'value-lost': this.onValueLost(t, s, ev.cid); break
    }
    this.pump(s.id)
  }

  private onValueLost (t: Tracked, s: RequestState, cid: string): void {
    const { reset, input } = s.forgetCid(cid)
    if (input !== undefined) { s.fatal ??= `input ${input} was lost: no live peer holds ${cid}`; return }
    for (const rec of reset) {
      this.metrics.reruns++
      const key = instanceKey(rec.step, rec.index)
      const runner = t.runners.get(key)
      if (runner?.finished === true) t.runners.delete(key)
      t.firstSeen.delete(placementKey(s.id, rec.step, rec.index))
    }
  }

  private known (s: RequestState, step: string, output: string): boolean {
    return s.workflow.steps[step]?.out.includes(output) === true
  }

  // ---- the pump: claims, firing, completion ------------------------------------------------------

  /** Coalesces: many events in one tick cost one pass. */
  private pump (request: string): void {
    const t = this.requests.get(request)
    if (t === undefined || t.pumpQueued === true) return
    t.pumpQueued = true
    queueMicrotask(() => {
      t.pumpQueued = false
      try {
        this.pass(t)
      } catch (err) {
        this.log.error('request %s: scheduler pass failed: %s', request, (err as Error).stack)
      }
    })
  }

  private pass (t: Tracked): void {
    const s = t.state
    const loaded = t.loaded
    if (s === undefined || loaded === undefined) return
    for (const w of [...t.waiters]) w()
    if (t.finishedAt !== undefined) return
    const outcome = s.outcome()
    if (outcome.status !== 'running') { this.finish(t, outcome.status === 'failed' ? outcome.error : undefined); return }
    this.evaluateConditions(t)
    const live = this.c.membership.live()
    let nextCheck = Infinity
    for (const name of Object.keys(s.workflow.steps)) {
      if (s.skipped(name) === 'yes') continue
      const step = s.step(name)
      if (s.started.mode === 'control' && !claimable(s, name, null)) continue
      const indices: Array<number | null> = step.foreach === undefined ? [null] : s.knownInstances(name)
      for (const index of indices) {
        const key = instanceKey(name, index)
        const pkey = placementKey(s.id, name, index)
        const rec = s.instance(name, index)
        if (rec.done !== undefined || rec.failed !== undefined) continue
        const winner = winnerOf(pkey, rec, this.claimRules)
        const runner = t.runners.get(key)
        if (winner === this.self) {
          this.drive(t, s, loaded, name, index)
          continue
        }
        if (runner !== undefined && !runner.fired) { runner.abort('lost the claim'); t.runners.delete(key) }
        if (winner !== undefined || !claimable(s, name, index)) continue
        const { wait, rank } = this.claimDelay(t, s, pkey, name, index, live)
        if (wait <= 0) this.claim(t, s, name, index, rank > 0)
        else nextCheck = Math.min(nextCheck, wait)
      }
    }
    if (nextCheck !== Infinity) {
      clearTimeout(t.timer)
      t.timer = setTimeout(() => { this.pump(s.id) }, nextCheck + 5)
      t.timer.unref()
    }
  }

  /** 0 when this peer should claim now; else how long to wait for better-ranked peers to claim first. */
  private claimDelay (t: Tracked, s: RequestState, key: string, step: string, index: number | null, live: string[]): { wait: number, rank: number } {
    if (this.unfinishedClaims() >= this.init.slots * this.init.claimsPerSlot) return { wait: Infinity, rank: Infinity }
    const ranked = rankCandidates(key, live, localityBytes(s, step, index))
    const rank = Math.max(0, ranked.indexOf(this.self))
    if (rank === 0) return { wait: 0, rank }
    const now = Date.now()
    const first = t.firstSeen.get(key) ?? now
    t.firstSeen.set(key, first)
    return { wait: first + rank * this.init.claimBackoffMs - now, rank }
  }

  private unfinishedClaims (): number {
    let n = 0
    for (const t of this.requests.values()) {
      if (t.finishing === true) continue
      for (const r of t.runners.values()) if (!r.finished) n++
    }
    return n
  }

  /**
   * A stand-in claim (this peer is not the best-ranked) waits one backoff before firing: if the better peer
   * was only slow (loading the bundle, a busy event loop), its claim arrives meanwhile and this one yields
   * before running anything, so an instance still runs once.
   */
  private claim (t: Tracked, s: RequestState, step: string, index: number | null, standIn = false): void {
    const rec = s.instance(step, index)
    const attempt = nextAttempt(rec)
    if ([...rec.claims.entries()].some(([p, c]) => p !== this.self && c.attempt >= rec.floor)) this.metrics.takeovers++
    this.metrics.claims++
    const incarnation = this.c.membership.incarnation
    rec.claims.set(this.self, { attempt, incarnation })
    void this.c.bus.publish({ type: 'step-claimed', from: this.self, ts: Date.now(), request: s.id, step, index, attempt, incarnation })
    if (standIn) {
      this.runnerFor(t, s, t.loaded as LoadedWorkflow, step, index).settleUntil = Date.now() + this.init.claimBackoffMs
      setTimeout(() => { this.pump(s.id) }, this.init.claimBackoffMs + 5).unref()
    }
    this.drive(t, s, t.loaded as LoadedWorkflow, step, index)
  }

  private runnerFor (t: Tracked, s: RequestState, loaded: LoadedWorkflow, step: string, index: number | null): InstanceRunner {
    const key = instanceKey(step, index)
    let runner = t.runners.get(key)
    if (runner === undefined) {
      runner = new InstanceRunner(this.runnerHost, s, loaded, step, index)
      t.runners.set(key, runner)
      if (s.started.mode === 'dataflow') runner.prewarm()
    }
    return runner
  }

  /** The instance is ours: pre-warm it (dataflow) and fire it when its trigger holds. */
  private drive (t: Tracked, s: RequestState, loaded: LoadedWorkflow, step: string, index: number | null): void {
    const runner = this.runnerFor(t, s, loaded, step, index)
    if (runner.fired || s.skipped(step) !== 'no' || Date.now() < (runner.settleUntil ?? 0)) return
    const def = s.step(step)
    const inputsReady = Object.values(def.in).every(src => s.resolve(src, step, index).state !== 'pending')
    if (inputsReady) runner.readyAt ??= Date.now()
    if (inputsReady || (def.trigger === 'eager' && s.started.mode === 'dataflow')) runner.fire()
  }

  private evaluateConditions (t: Tracked): void {
    const s = t.state as RequestState
    evaluateConditions(s, this.c.store, t.conditionsInFlight, () => { this.pump(s.id) })
  }

  /** What runners get of this scheduler: the components they use and the per-request hooks. */
  private makeRunnerHost (): RunnerHost {
    return {
      self: this.self,
      store: this.c.store,
      pool: this.c.pool,
      publish: async (ev: DflowEvent) => { await this.c.bus.publish(ev) },
      changed: async (request: string, signal: AbortSignal) => new Promise<void>(resolve => {
        const t = this.requests.get(request)
        if (t === undefined || signal.aborted) { resolve(); return }
        const done = (): void => { t.waiters.delete(done); signal.removeEventListener('abort', done); resolve() }
        t.waiters.add(done)
        signal.addEventListener('abort', done, { once: true })
      }),
      consumersOf: (s: RequestState, step: string, output: string, element: number | null) => consumersOf(s, step, output, element, (key, rec) => winnerOf(key, rec, this.claimRules)),
      log: (line: string, ...args: unknown[]) => { this.log(line, ...args) },
      logLine: (request: string, step: string, index: number | null, line: string) => {
        const entry = { request, step, index, peer: this.self, line }
        this.tracked(request).logs.push({ ...entry, ts: Date.now() })
        this.safeDispatch('scheduler:log', entry)
      }
    }
  }

  // ---- completion --------------------------------------------------------------------------------

  private finish (t: Tracked, error: string | undefined): void {
    const s = t.state as RequestState
    if (t.finishing === true) return
    t.finishing = true
    for (const r of t.runners.values()) {
      if (r.finished) continue
      r.abort(error ?? 'request finished')
      if (!r.fired) r.finished = true
    }
    void this.publishDone(t, s, error).finally(() => {
      t.finishedAt = Date.now()
      this.metrics.requestsFinished++
      clearTimeout(t.timer)
      for (const w of [...t.waiters]) w()
      this.safeDispatch('scheduler:request-finished', { request: s.id, status: error === undefined ? 'ok' : 'failed' })
    })
  }

  /** The submitter (or, if it is gone, the best-ranked live peer) publishes the final state for everyone. */
  private async publishDone (t: Tracked, s: RequestState, error: string | undefined): Promise<void> {
    const live = this.c.membership.live()
    const finisher = this.c.membership.isLive(s.started.submitter) ? s.started.submitter : rankCandidates(s.id, live, new Map())[0]
    let outputs: Record<string, ValueRef | null> = {}
    try {
      if (error === undefined) outputs = await finalOutputs(s, this.c.store, this.self, finisher === this.self)
    } catch (err) {
      error = `collecting the outputs failed: ${(err as Error).message}`
    }
    if (finisher === this.self && t.done === undefined) {
      const done: RequestDone = { type: 'request-done', from: this.self, ts: Date.now(), request: s.id, status: error === undefined ? 'ok' : 'failed', outputs, ...(error !== undefined ? { error } : {}) }
      t.done = done
      await this.c.bus.publish(done)
    }
    const keep = [...Object.values(outputs), ...Object.values(t.done?.outputs ?? {})].flatMap(ref => ref === null ? [] : [CID.parse(ref.cid)])
    await this.c.store.unpinRequest(s.id, keep).catch(err => { this.log.error('unpin %s: %s', s.id, (err as Error).message) })
  }

  /** Re-examine every running request (a peer died or came back: claims may have lapsed). */
  repumpAll (): void {
    for (const [id, t] of this.requests) if (t.finishedAt === undefined) this.pump(id)
  }

  /** Unfinished claims held here (carried in heartbeats). */
  claimLoad (): number { return this.unfinishedClaims() }

  /**
   * Whether to accept a pushed value of `request`: yes while it runs here and this peer claimed some of it
   * (or is its central store), and yes for a request not heard of yet (a push may arrive before the event announcing it).
   */
  wantsPush (request: string): boolean {
    const t = this.requests.get(request)
    if (t === undefined) return true
    if (t.finishedAt !== undefined) return false
    if (t.state === undefined) return true
    // with `store: central` the submitter is the store every value goes to
    if (t.state.started.store === 'central' && t.state.started.submitter === this.self) return true
    return t.runners.size > 0
  }

  // ---- reading -----------------------------------------------------------------------------------

  has (request: string): boolean { return this.requests.get(request)?.state !== undefined }

  list (): Array<{ requestId: string, workflow: string, status: string, startedAt: number }> {
    const out = []
    for (const [id, t] of this.requests) {
      if (t.state === undefined) continue
      out.push({ requestId: id, workflow: t.state.started.workflow, status: this.statusOf(t), startedAt: t.state.started.ts })
    }
    return out.sort((a, b) => b.startedAt - a.startedAt)
  }

  private statusOf (t: Tracked): 'running' | 'ok' | 'failed' {
    if (t.finishedAt === undefined && t.done === undefined) return 'running'
    const o = t.state?.outcome()
    if (t.done !== undefined) return t.done.status
    return o?.status === 'ok' ? 'ok' : 'failed'
  }

  /** Resolves when the request finished (ok or failed) as this peer sees it. */
  async waitFinished (request: string, signal?: AbortSignal): Promise<void> {
    for (;;) {
      const t = this.requests.get(request)
      if (t?.finishedAt !== undefined) return
      await new Promise<void>((resolve, reject) => {
        const onFinished = (ev: CustomEvent<{ request: string }>): void => { if (ev.detail.request === request) { cleanup(); resolve() } }
        const onAbort = (): void => { cleanup(); reject(signal?.reason) }
        const cleanup = (): void => { this.removeEventListener('scheduler:request-finished', onFinished); signal?.removeEventListener('abort', onAbort) }
        this.addEventListener('scheduler:request-finished', onFinished)
        signal?.addEventListener('abort', onAbort, { once: true })
        if (this.requests.get(request)?.finishedAt !== undefined) { cleanup(); resolve() }
      })
    }
  }

  async view (request: string): Promise<RequestView | undefined> {
    const t = this.requests.get(request)
    if (t?.state === undefined) return undefined
    return buildView(t.state, this.statusOf(t), t.done, t.finishedAt, async r => materialize(this.c.store, r, { signal: AbortSignal.timeout(30_000) }),
      async ref => fetchRef(this.c.store, ref, { signal: AbortSignal.timeout(30_000) }))
  }

  eventsOf (request: string): RequestEvent[] { return this.requests.get(request)?.events ?? [] }
  logsOf (request: string): Tracked['logs'] { return this.requests.get(request)?.logs ?? [] }

  private safeDispatch<K extends keyof SchedulerEvents> (type: K, detail: SchedulerEvents[K]['detail']): void {
    try { this.safeDispatchEvent(type, { detail } as any) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
  }

  private sweep (): void {
    const cutoff = Date.now() - this.init.retentionMs
    // events of a request whose start this peer never saw (it joined late) are dropped after the retention too
    for (const [id, t] of this.requests) {
      if ((t.finishedAt ?? (t.state === undefined ? t.createdAt : Infinity)) < cutoff) this.requests.delete(id)
    }
  }
}
