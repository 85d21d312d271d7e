export { SubmitError } from './submission.ts'
import { TypedEventEmitter } from '@libp2p/interface'
import { randomUUID } from 'node:crypto'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { DflowEvent, RequestEvent, RequestStarted } from '../../protocols/events/index.ts'
import type { AwaitablePush, DStore } from '../dstore/types.ts'
import type { EventBus } from './bus.ts'
import { evaluateConditions } from './conditions.ts'
import { checkRequestId, startRequest } from './submission.ts'
import { newTracked, type Tracked } from './tracked.ts'
import { DEFAULT_STEP_MS, LoadBook } from './queue-model.ts'
import { claimValid, type ClaimRules } from './claims.ts'
import { RequestState } from './request-state.ts'
import type { RunnerHost } from './runner.ts'
import { Prewarmer } from './prewarm.ts'
import { WorkflowHistory } from './history.ts'
import { latestStarts } from './urgency.ts'
import { Dispatcher } from './dispatcher.ts'
import { EventApplier } from './applier.ts'
import { makeRunnerHost } from './runner-host.ts'
import { Finisher } from './finisher.ts'
import { setLongTimeout } from '../util/long-timer.ts'
import type { FunctionPool, Membership, SchedulerInit, SubmitOptions, WorkflowLoader } from './types.ts'
import { SchedulerReader } from './reader.ts'
import { sendSlack, type SlackMemo } from './send-slack.ts'
import { LateResults } from './settle.ts'

/** DFLOW_URGENCY=0: the pool serves waiting invocations first come first served (A/B runs of one build). */
const URGENCY_OFF = process.env.DFLOW_URGENCY === '0'

export interface SchedulerEvents {
  'scheduler:event': CustomEvent<RequestEvent>
  'scheduler:request-finished': CustomEvent<{ request: string, status: 'ok' | 'failed', mode: string }>
  'scheduler:log': CustomEvent<{ request: string, step: string, index: number | null, peer: string, line: string }>
  /** a request's state was forgotten (after its retention): what else is kept per request can go too */
  'scheduler:forgotten': CustomEvent<string>
  /** the last request this peer held state for was forgotten (after its retention) */
  'scheduler:idle': CustomEvent<null>
  /** a request finished ok here with instances whose results this peer has not heard: sync should follow it (settle.ts) */
  'scheduler:request-settling': CustomEvent<string>
  /** every instance of a settling request is done here now */
  'scheduler:request-settled': CustomEvent<string>
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
  /** claims this peer won at some point and made a runner for: its own, and placers' assignments to it */
  claims: number
  /** claims this peer made, as an instance's placer, for other peers */
  assigned: number
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
  private leaseCheck?: NodeJS.Timeout
  readonly claimRules: ClaimRules
  readonly load: LoadBook
  readonly history = new WorkflowHistory()
  readonly prewarmer: Prewarmer
  readonly runnerHost: RunnerHost
  readonly dispatcher: Dispatcher
  readonly finisher: Finisher
  readonly applier: EventApplier
  readonly late: LateResults
  readonly reader: SchedulerReader
  readonly metrics: SchedulerMetrics = { claims: 0, assigned: 0, claimsLost: 0, takeovers: 0, reruns: 0, rereplications: 0, requestsSeen: 0, requestsFinished: 0, fencedDrops: 0 }

  constructor (components: SchedulerComponents, init: SchedulerInit) {
    super()
    this.c = components
    this.self = components.self
    this.init = { retentionMs: 3_600_000, leaseMs: 0, claimTimeoutMs: 2000, linkMiBps: 100, hopMs: 2, recordsDir: '', ...init }
    this.log = components.logger.forComponent('dflow:dscheduler')
    this.claimRules = { membership: components.membership, leaseMs: this.init.leaseMs }
    this.load = new LoadBook(this.init.slots)
    this.prewarmer = new Prewarmer(components.pool, this.history, this.self, this.init.slots, this.log)
    this.runnerHost = makeRunnerHost(this)
    this.applier = new EventApplier(this)
    this.dispatcher = new Dispatcher(this)
    this.finisher = new Finisher(this)
    this.late = new LateResults(this)
    this.reader = new SchedulerReader(this)
  }

  async start (): Promise<void> {
    await this.reader.loadRecords()
    this.c.bus.onEvent(ev => { this.onEvent(ev) })
    if (this.reader.hasRecords()) this.armTimers()
  }

  /** Timers run only while this peer holds some request (an idle peer wakes for nothing). */
  private armTimers (): void {
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => { this.sweep() }, Math.max(1000, Math.min(30_000, this.init.retentionMs / 2)))
      this.sweeper.unref()
    }
    if (this.leaseCheck === undefined && this.init.leaseMs > 0) {
      // a lease lapses without any event announcing it: while requests run, look at claims held elsewhere
      this.leaseCheck = setInterval(() => { this.checkLeases() }, Math.max(100, this.init.leaseMs / 2))
      this.leaseCheck.unref()
    }
  }

  private disarmTimers (): void {
    clearInterval(this.sweeper)
    clearInterval(this.leaseCheck)
    this.sweeper = undefined
    this.leaseCheck = undefined
  }

  async stop (): Promise<void> {
    this.disarmTimers()
    for (const t of this.requests.values()) {
      clearTimeout(t.timer)
      clearTimeout(t.quietClaimsTimer)
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
      this.armTimers()
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
    if (!URGENCY_OFF) t.latestStart = latestStarts(s, step => this.history.expectedMs(started.workflow, step) ?? DEFAULT_STEP_MS)
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
    if (started.mode === 'dataflow') t.warmPlan = this.prewarmer.start(s, t.loaded, this.c.membership.live(), p => this.load.slots(p))
    for (const name of Object.keys(s.workflow.steps)) {
      if (s.step(name).foreach === undefined) s.instance(name, null)
      for (const rec of s.instancesOf(name)) t.dirty.add(rec)
    }
    for (const ev of t.early.splice(0)) this.apply(t, ev)
    this.pump(started.request)
  }

  private apply (t: Tracked, ev: RequestEvent): void { this.applier.apply(t, ev) }

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
      evaluateConditions(s, this.c.store, t.conditionsInFlight, {
        changed: () => {
          t.outcomeDirty = true
          for (const name of Object.keys(s.workflow.steps)) this.applier.touchStep(t, s, name)
          this.pump(s.id)
        },
        isLive: peer => this.c.membership.isLive(peer),
        lost: cid => { void this.c.bus.publish({ type: 'value-lost', from: this.self, ts: Date.now(), request: s.id, cid }) },
        running: () => t.finishing !== true && this.requests.get(s.id) === t
      })
    }
    // examining an instance may touch others (a producer starting makes its consumers claimable): go on until quiet
    for (let round = 0; t.dirty.size > 0 && round < 8; round++) {
      const dirty = [...t.dirty]
      t.dirty.clear()
      for (const rec of dirty) this.dispatcher.examine(t, s, rec)
      this.dispatcher.place(t, s)
    }
    if (t.dirty.size > 0) this.pump(s.id)
    else this.dispatcher.place(t, s)
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

  safeDispatch<K extends keyof SchedulerEvents> (type: K, detail: SchedulerEvents[K]['detail']): void {
    try { this.safeDispatchEvent(type, { detail } as any) } catch (err) { this.log.error('listener failed: %s', (err as Error).message) }
  }

  // ---- bounded state ---------------------------------------------------------------------------------

  /** Forget a finished request's state after retention (its durable record, if any, still answers). */
  forget (request: string): void {
    const t = this.requests.get(request)
    if (t === undefined) return
    clearTimeout(t.timer)
    clearTimeout(t.quietClaimsTimer)
    t.deadline?.clear()
    this.c.pool.release?.(request)
    // the load book holds instance records with their request's state: none may outlive the request
    for (const rec of t.state?.instances.values() ?? []) this.load.set(rec.gid, undefined)
    this.requests.delete(request)
    this.safeDispatch('scheduler:forgotten', request)
    if (this.requests.size === 0) this.safeDispatch('scheduler:idle', null)
    this.forgotten.add(request)
    if (this.forgotten.size > 10_000) this.forgotten.delete(this.forgotten.values().next().value as string)
  }

  private sweep (): void {
    const cutoff = Date.now() - this.init.retentionMs
    for (const [id, t] of this.requests) {
      // events of a request whose start this peer never saw (it joined late) go after the retention too
      const since = t.finishedAt ?? (t.state === undefined ? t.createdAt : Infinity)
      if (since >= cutoff) continue
      this.forget(id)
      // values pushed for a request this peer never ran were pinned to it: release them too
      if (t.state === undefined) this.c.store.unpinRequest(id, []).catch(() => {})
    }
    this.reader.sweepRecords(cutoff)
    if (this.requests.size === 0 && !this.reader.hasRecords()) this.disarmTimers()
  }

  /** How long an own event may wait to share a gossip message with later ones (send-slack.ts). */
  sendSlack (ev: DflowEvent, memo?: SlackMemo): number { return sendSlack(this, ev, memo) }

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
