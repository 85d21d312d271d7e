export { SubmitError } from './submission.ts'
import { TypedEventEmitter } from '@libp2p/interface'
import { randomUUID } from 'node:crypto'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { DflowEvent, RequestEvent, RequestStarted } from '../../protocols/events/index.ts'
import type { AwaitablePush, DStore } from '../dstore/types.ts'
import type { EventBus } from './bus.ts'
import { evaluateConditions } from './conditions.ts'
import { checkRequestId, startRequest } from './submission.ts'
import { newTracked, MAX_LOG_LINES, type RunRecord, type Tracked } from './tracked.ts'
import { LoadBook } from './placement.ts'
import { claimValid, consumersOf, fromWinner, placementKey, recordClaim, type ClaimRules } from './claims.ts'
import { instanceKey, RequestState, type InstanceRecord } from './request-state.ts'
import { InstanceRunner, prewarmModules, type RunnerHost } from './runner.ts'
import { WorkflowHistory } from './history.ts'
import { Dispatcher } from './dispatcher.ts'
import { Finisher } from './finisher.ts'
import { setLongTimeout } from '../util/long-timer.ts'
import type { FunctionPool, Membership, SchedulerInit, SubmitOptions, WorkflowLoader } from './types.ts'
import { SchedulerReader } from './reader.ts'

export interface SchedulerEvents {
  'scheduler:event': CustomEvent<RequestEvent>
  'scheduler:request-finished': CustomEvent<{ request: string, status: 'ok' | 'failed', mode: string }>
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

/** Counters for /v1/metrics/scheduler and /metrics (chaos and bench read them). */
export interface SchedulerMetrics {
  claims: number
  /** claims this peer made that another claim beat (its runner, if any, was superseded) */
  claimsLost: number
  takeovers: number
  reruns: number
  rereplications: number
  requestsSeen: number
  requestsFinished: number
  /** runner events dropped because they did not come from the instance's winning claim */
  fencedDrops: number
}

/**
 * DScheduler: every peer runs one. An event flows one way: decoded by the bus, appended to its request's
 * log, applied to the request's state (touching only the instances it can change), then the touched
 * instances are re-examined (winner, readiness) and placement claims what nobody won yet (dispatcher.ts).
 */
export class DScheduler extends TypedEventEmitter<SchedulerEvents> {
  readonly self: string
  readonly c: SchedulerComponents
  readonly init: Required<SchedulerInit>
  readonly log: Logger
  readonly requests = new Map<string, Tracked>()
  /** ids of requests forgotten after their retention: late events for them are dropped */
  private readonly forgotten = new Set<string>()
  private sweeper?: NodeJS.Timeout
  private readonly runRecords = new WeakMap<InstanceRunner, RunRecord>()
  private leaseCheck?: NodeJS.Timeout
  readonly claimRules: ClaimRules
  readonly load: LoadBook
  readonly history = new WorkflowHistory()
  readonly runnerHost: RunnerHost
  readonly dispatcher: Dispatcher
  readonly finisher: Finisher
  readonly reader: SchedulerReader
  readonly metrics: SchedulerMetrics = { claims: 0, claimsLost: 0, takeovers: 0, reruns: 0, rereplications: 0, requestsSeen: 0, requestsFinished: 0, fencedDrops: 0 }

  constructor (components: SchedulerComponents, init: SchedulerInit) {
    super()
    this.c = components
    this.self = components.self
    this.init = { claimsPerSlot: 4, claimBackoffMs: 300, retentionMs: 3_600_000, leaseMs: 3000, claimTimeoutMs: 2000, linkMiBps: 100, hopMs: 2, recordsDir: '', ...init }
    this.log = components.logger.forComponent('dflow:dscheduler')
    this.claimRules = { membership: components.membership, leaseMs: this.init.leaseMs }
    this.load = new LoadBook(this.init.slots)
    this.runnerHost = this.makeRunnerHost()
    this.dispatcher = new Dispatcher(this)
    this.finisher = new Finisher(this)
    this.reader = new SchedulerReader(this)
  }

  async start (): Promise<void> {
    await this.reader.loadRecords()
    this.c.bus.onEvent(ev => { this.onEvent(ev) })
    this.sweeper = setInterval(() => { this.sweep() }, Math.max(1000, Math.min(30_000, this.init.retentionMs / 2)))
    this.sweeper.unref()
    if (this.init.leaseMs > 0) {
      // a lease lapses without any event announcing it: while requests run, look at claims held elsewhere
      this.leaseCheck = setInterval(() => { this.checkLeases() }, Math.max(100, this.init.leaseMs / 2))
      this.leaseCheck.unref()
    }
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
    if (this.requests.get(id)?.state !== undefined || this.reader.record(id) !== undefined) return id
    const loaded = await this.c.loader.load(opts.workflow, [this.self])
    const started = await startRequest(id, opts, loaded.workflow, this.c.store, this.self)
    await this.c.bus.publish(started)
    await this.c.secureRequest?.(started)
    return id
  }

  async cancel (request: string, reason = 'cancelled'): Promise<boolean> {
    const t = this.requests.get(request)
    if (t?.state === undefined || t.done !== undefined || t.finishing === true) return false
    await this.c.bus.publish({ type: 'request-cancelled', from: this.self, ts: Date.now(), request, reason })
    return true
  }

  // ---- events: decode (bus) -> log -> apply -> pass ----------------------------------------------

  tracked (request: string): Tracked {
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
    // a request forgotten after its retention (or finished before a restart) is not brought back by a late event
    if (!this.requests.has(ev.request) && (this.forgotten.has(ev.request) || this.reader.record(ev.request) !== undefined)) return
    const t = this.tracked(ev.request)
    t.events.push(ev)
    this.safeDispatch('scheduler:event', ev)
    if (ev.type === 'request-started') {
      if (t.state !== undefined || t.loaded !== undefined || t.loading === true) { this.onConflictingStart(t, ev); return }
      void this.loadRequest(t, ev)
      return
    }
    if (t.state === undefined) { t.early.push(ev); return }
    this.apply(t, ev)
  }

  /**
   * The same request id started twice (two submitters at once): every peer keeps the start that comes first
   * in one order (earliest, then smallest publisher id), whatever order it heard them in.
   */
  private onConflictingStart (t: Tracked, ev: RequestStarted): void {
    const current = t.state?.started ?? t.startedBy
    if (current === undefined || current.from === ev.from) return
    const better = ev.ts < current.ts || (ev.ts === current.ts && ev.from < current.from)
    if (!better) return
    this.log('request %s: a conflicting start from %s wins over %s\'s; restarting it here', ev.request, ev.from, current.from)
    for (const r of t.runners.values()) r.supersede()
    const fresh = newTracked()
    fresh.events = t.events
    fresh.early = t.events.filter((e): e is RequestEvent => e.type !== 'request-started')
    this.requests.set(ev.request, fresh)
    void this.loadRequest(fresh, ev)
  }

  private async loadRequest (t: Tracked, started: RequestStarted): Promise<void> {
    t.loading = true
    t.startedBy = started
    try {
      t.loaded = await this.c.loader.load(started.workflow, [started.submitter, started.from])
    } catch (err) {
      this.log.error('request %s: cannot load workflow %s: %s', started.request, started.workflow, (err as Error).message)
      t.loading = false
      return
    }
    if (this.requests.get(started.request) !== t) return
    const s = new RequestState(t.loaded.workflow, started)
    t.state = s
    Object.keys(s.workflow.steps).forEach((name, i) => t.order.set(name, i))
    this.metrics.requestsSeen++
    if (started.deadlineMs !== undefined) {
      t.deadline = setLongTimeout(() => {
        if (t.finishing !== true && s.fatal === undefined) {
          s.fatal = `deadline of ${started.deadlineMs} ms exceeded`
          t.outcomeDirty = true
          this.pump(started.request)
        }
      }, started.ts + started.deadlineMs - Date.now())
    }
    if (started.mode === 'dataflow') prewarmModules(this.c.pool, t.loaded, this.init.slots)
    for (const name of Object.keys(s.workflow.steps)) {
      if (s.step(name).foreach === undefined) s.instance(name, null)
      for (const rec of s.instancesOf(name)) t.dirty.add(rec)
    }
    for (const ev of t.early.splice(0)) this.apply(t, ev)
    this.pump(started.request)
  }

  private apply (t: Tracked, ev: RequestEvent): void {
    const s = t.state
    if (s === undefined || t.finishing === true) {
      if (ev.type === 'request-done' && t.done === undefined && s !== undefined) { t.done = ev; this.pump(ev.request) }
      return
    }
    switch (ev.type) {
      case 'step-claimed': {
        const rec = this.instanceOf(s, ev.step, ev.index)
        if (rec === undefined) return
        this.load.learnSlots(ev.from, ev.slots)
        if (recordClaim(rec, ev.from, { attempt: ev.attempt, incarnation: ev.incarnation, ts: ev.ts })) this.touch(t, rec)
        return
      }
      case 'output-ready':
      case 'element-posted':
      case 'step-done':
      case 'step-failed': {
        const rec = this.instanceOf(s, ev.step, ev.index)
        if (rec === undefined) return
        if (ev.type !== 'step-done' && ev.type !== 'step-failed' && !s.step(ev.step).out.includes(ev.output)) return
        // a runner's event implies its claim (the claim event itself may have been lost on the way)
        recordClaim(rec, ev.from, { attempt: ev.attempt, incarnation: ev.incarnation, ts: ev.ts })
        this.dispatcher.refreshWinner(t, s, rec)
        if (!fromWinner(rec, ev.from, ev)) { this.metrics.fencedDrops++; return }
        this.applyResult(t, s, rec, ev)
        return
      }
      case 'request-cancelled':
        if (ev.from !== s.started.submitter && ev.from !== s.started.from && ev.from !== this.self) return
        s.fatal ??= `cancelled: ${ev.reason}`
        t.outcomeDirty = true
        break
      case 'request-done':
        if (!this.finisher.mayFinish(s, ev.from)) return
        t.done ??= ev
        t.outcomeDirty = true
        break
      case 'value-lost': this.onValueLost(t, s, ev.cid); break
    }
    this.pump(s.id)
  }

  /** An accepted output, element, done or failure of an instance's winning run. */
  private applyResult (t: Tracked, s: RequestState, rec: InstanceRecord, ev: Extract<RequestEvent, { type: 'output-ready' | 'element-posted' | 'step-done' | 'step-failed' }>): void {
    const wf = s.started.workflow
    switch (ev.type) {
      case 'output-ready':
        if (!s.recordOutput(ev.step, ev.index, ev.output, ev.value)) return
        this.history.recordOutput(wf, ev.step, ev.output, ev.value.inline !== undefined ? 0 : ev.value.size)
        this.touchReaders(t, s, ev.step, ev.output, ev.index)
        break
      case 'element-posted':
        if (!s.recordElement(ev.step, ev.index, ev.output, ev.element, ev.value)) return
        this.history.recordOutput(wf, ev.step, ev.output, ev.value.inline !== undefined ? 0 : ev.value.size)
        this.touchReaders(t, s, ev.step, ev.output, ev.element)
        break
      case 'step-done':
        if (!s.recordDone(ev)) return
        this.history.recordRun(wf, ev.step, ev.endAt - ev.startAt)
        for (const output of Object.keys(ev.streams)) this.touchReaders(t, s, ev.step, output, null)
        if (s.started.mode === 'control') for (const name of s.readersOfStep(ev.step)) this.touchStep(t, s, name)
        t.outcomeDirty = true
        this.touch(t, rec)
        break
      case 'step-failed':
        if (!s.recordFailed(ev.step, ev.index, ev.error)) return
        t.outcomeDirty = true
        this.touch(t, rec)
        break
    }
    this.pump(s.id)
  }

  /** The record an event names, when the step exists and the index fits its kind (foreach or not). */
  private instanceOf (s: RequestState, step: string, index: number | null): InstanceRecord | undefined {
    const def = s.workflow.steps[step]
    if (def === undefined || (def.foreach === undefined) !== (index === null)) return undefined
    return s.instance(step, index)
  }

  touch (t: Tracked, rec: InstanceRecord): void {
    t.dirty.add(rec)
    if (t.state !== undefined) this.pump(t.state.id)
  }

  touchStep (t: Tracked, s: RequestState, step: string): void {
    if (s.step(step).foreach === undefined) s.instance(step, null)
    for (const rec of s.instancesOf(step)) t.dirty.add(rec)
  }

  /** Only the instances that read `step.output` can change when it (or its element `at`) appears. */
  private touchReaders (t: Tracked, s: RequestState, step: string, output: string, at: number | null): void {
    for (const name of s.readers.get(`${step}.${output}`) ?? []) {
      const reader = s.step(name)
      const src = reader.foreach
      const perItem = at !== null && src !== undefined && src.kind === 'step' && src.step === step && src.output === output &&
        (s.step(step).foreach !== undefined || s.resolveRef({ kind: 'item' }, name, at).state === 'ready') && !Object.values(reader.in).some(i => i.kind === 'step' && i.step === step)
      if (perItem && s.elementKnown(name, at)) t.dirty.add(s.instance(name, at))
      else this.touchStep(t, s, name)
      if (reader.when !== undefined) t.outcomeDirty = true
      // a whole list or a closed stream fixes the instance count of a foreach over it, and of every foreach
      // downstream of that one: the steps reading their lists can now resolve
      if (at === null && src?.kind === 'step' && src.step === step && src.output === output) this.touchCount(t, s, name, new Set())
    }
  }

  private touchCount (t: Tracked, s: RequestState, step: string, seen: Set<string>): void {
    if (seen.has(step)) return
    seen.add(step)
    for (const output of s.step(step).out) {
      for (const name of s.readers.get(`${step}.${output}`) ?? []) {
        this.touchStep(t, s, name)
        const src = s.step(name).foreach
        if (src?.kind === 'step' && src.step === step) this.touchCount(t, s, name, seen)
      }
    }
    t.outcomeDirty = true
  }

  private onValueLost (t: Tracked, s: RequestState, cid: string): void {
    const { reset, input } = s.forgetCid(cid)
    if (input !== undefined) { s.fatal ??= `input ${input} was lost: no live peer holds ${cid}`; t.outcomeDirty = true; return }
    for (const rec of reset) {
      this.metrics.reruns++
      const key = instanceKey(rec.step, rec.index)
      const runner = t.runners.get(key)
      if (runner?.finished === true) t.runners.delete(key)
      this.touch(t, rec)
    }
  }

  // ---- the pass: only what events touched ----------------------------------------------------------

  /** Coalesces: many events in one tick cost one pass. */
  pump (request: string): void {
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
    if (s === undefined || t.loaded === undefined) return
    for (const w of [...t.waiters]) w()
    if (t.finishing === true) return
    if (t.done !== undefined) { this.finisher.finish(t, t.done.status === 'failed' ? (t.done.error ?? 'failed') : undefined); return }
    if (t.outcomeDirty) {
      t.outcomeDirty = false
      const outcome = s.outcome()
      if (outcome.status !== 'running') { this.finisher.finish(t, outcome.status === 'failed' ? outcome.error : undefined); return }
      evaluateConditions(s, this.c.store, t.conditionsInFlight, () => {
        t.outcomeDirty = true
        for (const name of Object.keys(s.workflow.steps)) this.touchStep(t, s, name)
        this.pump(s.id)
      })
    }
    const dirty = [...t.dirty]
    t.dirty.clear()
    for (const rec of dirty) this.dispatcher.examine(t, s, rec)
    this.dispatcher.place(t, s)
  }

  /** Re-examine every unfinished instance of every running request (a peer died or came back). */
  repumpAll (): void {
    for (const [id, t] of this.requests) {
      if (t.state === undefined || t.finishing === true) continue
      for (const rec of t.state.instances.values()) if (rec.done === undefined && rec.failed === undefined) t.dirty.add(rec)
      this.pump(id)
    }
  }

  /** Claims held elsewhere whose lease lapsed are re-examined (only while something runs). */
  private checkLeases (): void {
    for (const [id, t] of this.requests) {
      if (t.state === undefined || t.finishing === true) continue
      let any = false
      for (const rec of t.state.instances.values()) {
        const w = rec.winner
        if (w === undefined || w.peer === this.self || rec.done !== undefined || rec.failed !== undefined) continue
        if (!claimValid(w.peer, w, rec, this.claimRules)) { t.dirty.add(rec); any = true }
      }
      if (any) this.pump(id)
    }
  }

  /** Unfinished claims held here. */
  claimLoad (): number { return this.load.load(this.self) }

  /**
   * Whether to accept a pushed value of `request`: yes while it runs here and this peer claimed some of it
   * (or is its central store), and yes for a request not heard of yet (a push may arrive before the event announcing it).
   */
  wantsPush (request: string): boolean {
    const t = this.requests.get(request)
    if (t === undefined) return !this.forgotten.has(request)
    if (t.finishing === true) return false
    if (t.state === undefined) return true
    if (t.state.started.store === 'central' && t.state.started.submitter === this.self) return true
    return t.runners.size > 0
  }

  // ---- runners ---------------------------------------------------------------------------------------

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
      consumersOf: (s: RequestState, step: string, output: string, element: number | null) => consumersOf(s, step, output, element),
      log: (line: string, ...args: unknown[]) => { this.log(line, ...args) },
      logLine: (request: string, step: string, index: number | null, line: string) => {
        const entry = { request, step, index, peer: this.self, line }
        const logs = this.tracked(request).logs
        logs.push({ ...entry, ts: Date.now() })
        if (logs.length > MAX_LOG_LINES) logs.splice(0, logs.length - MAX_LOG_LINES)
        this.safeDispatch('scheduler:log', entry)
      },
      ran: (runner: InstanceRunner, outcome) => {
        const t = this.requests.get(runner.state.id)
        if (t === undefined) return
        const run = this.runRecords.get(runner)
        if (run !== undefined) { run.outcome = outcome; return }
        const rec: RunRecord = { step: runner.stepName, index: runner.index, peer: this.self, ...runner.fence, firedAt: Date.now(), outcome }
        this.runRecords.set(runner, rec)
        t.runs.push(rec)
      }
    }
  }

  safeDispatch<K extends keyof SchedulerEvents> (type: K, detail: SchedulerEvents[K]['detail']): void {
    try { this.safeDispatchEvent(type, { detail } as any) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
  }

  // ---- bounded state ---------------------------------------------------------------------------------

  /** Forget a finished request's state after retention (its durable record, if any, still answers). */
  forget (request: string): void {
    const t = this.requests.get(request)
    if (t === undefined) return
    clearTimeout(t.timer)
    t.deadline?.clear()
    this.requests.delete(request)
    this.forgotten.add(request)
    if (this.forgotten.size > 10_000) this.forgotten.delete(this.forgotten.values().next().value as string)
  }

  private sweep (): void {
    const cutoff = Date.now() - this.init.retentionMs
    for (const [id, t] of this.requests) {
      // events of a request whose start this peer never saw (it joined late) go after the retention too
      const since = t.finishedAt ?? (t.state === undefined ? t.createdAt : Infinity)
      if (since < cutoff) this.forget(id)
    }
    this.reader.sweepRecords(cutoff)
  }

  // ---- reading (reader.ts) ---------------------------------------------------------------------------

  has (request: string): boolean { return this.reader.has(request) }
  list (): ReturnType<SchedulerReader['list']> { return this.reader.list() }
  async waitFinished (request: string, signal?: AbortSignal): Promise<void> { await this.reader.waitFinished(request, signal) }
  async view (request: string): ReturnType<SchedulerReader['view']> { return this.reader.view(request) }
  eventsOf (request: string): RequestEvent[] { return this.requests.get(request)?.events ?? [] }
  logsOf (request: string): Tracked['logs'] { return this.requests.get(request)?.logs ?? [] }
  runsOf (request: string): Tracked['runs'] { return this.requests.get(request)?.runs ?? [] }
  /** requests with state held on this peer */
  trackedRequests (): number { return this.requests.size }
}
