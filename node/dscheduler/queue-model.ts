import { pendingProducers } from './claims.ts'
import type { InstanceRecord, RequestState } from './request-state.ts'
import type { WorkflowHistory } from './history.ts'

/** Expected run time of a step nobody has timed yet, ms. */
export const DEFAULT_STEP_MS = 50

/** Work a peer holds or will hold: when it can start (its inputs exist) and how long it runs, ms. */
export interface Job { readyAt: number, ms: number }

/**
 * Expected wait of work ready at `readyAt` on a peer with `slots` slots that holds `jobs` (sorted by readyAt):
 * a list schedule in order of readiness, as the peer's pool fires instances when their inputs exist. Only work
 * ready no later than this one delays it: an instance claimed ahead whose inputs come later is no queue now
 * (counting it was what made a peer holding the data look busy, and sent its consumers elsewhere).
 */
export function slotWait (jobs: readonly Job[], slots: number, readyAt: number, now: number, strictlyBefore = false): number {
  const free = new Array<number>(Math.max(1, slots)).fill(-Infinity)
  for (const j of jobs) {
    if (j.readyAt > readyAt || (strictlyBefore && j.readyAt === readyAt)) break
    schedule(free, j, now)
  }
  return Math.max(0, earliest(free) - Math.max(readyAt, now))
}

/**
 * What adding a job ready at `readyAt` for `ms` costs a peer holding `jobs` (sorted by readyAt) that are ready
 * later than it: its own wait, plus the most it delays one of them (it takes a slot they would have had). The
 * wait alone missed that: each of six siblings placed one by one on a 4-slot peer found a slot free, since the
 * ones placed before it were ready a few ms later and so were not counted, and two of them then waited a whole
 * step for a slot (epigenomics' lanes, 50 ms on the critical path) while three peers idled.
 */
export function insertionCost (jobs: readonly Job[], slots: number, readyAt: number, ms: number, now: number): number {
  const without = new Array<number>(Math.max(1, slots)).fill(-Infinity)
  const within = new Array<number>(Math.max(1, slots)).fill(-Infinity)
  let own: number | undefined
  let worst = 0
  for (const j of jobs) {
    if (own === undefined && j.readyAt > readyAt) {
      own = Math.max(0, earliest(within) - Math.max(readyAt, now))
      schedule(within, { readyAt, ms }, now)
    }
    const a = schedule(without, j, now)
    const b = schedule(within, j, now)
    if (own !== undefined) worst = Math.max(worst, b - a)
  }
  if (own === undefined) own = Math.max(0, earliest(within) - Math.max(readyAt, now))
  return own + worst
}

/** Puts a job on the slot that frees first (`free`: when each slot frees); answers when it starts. */
function schedule (free: number[], j: Job, now: number): number {
  let min = 0
  for (let i = 1; i < free.length; i++) if (free[i] < free[min]) min = i
  const start = Math.max(free[min], j.readyAt)
  // work that should have ended by now ends any moment: it runs late, not forever
  free[min] = Math.max(start + j.ms, now)
  return start
}

function earliest (free: number[]): number {
  let e = free[0]
  for (let i = 1; i < free.length; i++) e = Math.min(e, free[i])
  return e
}

/** An instance a peer won and has not finished, with its request (its step times and inputs). */
export interface Held { rec: InstanceRecord, s: RequestState }

/**
 * What each peer holds, from the claims every peer hears: the instances it won and has not finished (running,
 * or waiting for data that comes soon: claims reach one level ahead of running producers). Kept incrementally
 * (an instance enters when it is won, leaves when it is done, failed, lost or its request finished), so a
 * peer's count costs nothing and its queue can be modelled from the records (QueueModel).
 */
export class LoadBook {
  private readonly byPeer = new Map<string, Map<string, Held | null>>()
  private readonly owner = new Map<string, string>()
  private readonly slotsOf = new Map<string, number>()

  constructor (private readonly defaultSlots: number) {}

  /** `peer` runs (or will run) instance `gid` now; undefined when it runs nowhere. */
  set (gid: string, peer: string | undefined, held?: Held): boolean {
    const prev = this.owner.get(gid)
    if (prev === peer) {
      if (peer !== undefined && held !== undefined) this.byPeer.get(peer)?.set(gid, held)
      return false
    }
    if (prev !== undefined) {
      const map = this.byPeer.get(prev)
      map?.delete(gid)
      if (map?.size === 0) this.byPeer.delete(prev)
      this.owner.delete(gid)
    }
    if (peer !== undefined) {
      this.owner.set(gid, peer)
      let map = this.byPeer.get(peer)
      if (map === undefined) { map = new Map(); this.byPeer.set(peer, map) }
      map.set(gid, held ?? null)
    }
    return true
  }

  load (peer: string): number { return this.byPeer.get(peer)?.size ?? 0 }

  /** The instances `peer` holds (those entered without a record are counted by `load` only). */
  * held (peer: string): Iterable<Held> {
    for (const h of this.byPeer.get(peer)?.values() ?? []) if (h !== null) yield h
  }

  learnSlots (peer: string, slots: number | undefined): void {
    if (slots !== undefined && slots > 0) this.slotsOf.set(peer, slots)
  }

  slots (peer: string): number { return this.slotsOf.get(peer) ?? this.defaultSlots }

  forgetPeer (peer: string): void { this.slotsOf.delete(peer) }

  /** Per-peer loads, for the metrics route. */
  snapshot (): Record<string, number> {
    return Object.fromEntries([...this.byPeer].map(([p, s]) => [p, s.size]))
  }
}

/**
 * Each peer's expected queue during one placement walk: the work it holds (from the load book), the work other
 * placers will soon put on it (instances claimable now whose placer is that peer: their data is there, so
 * they usually stay), and what this walk placed. A peer's jobs are read from the book when first needed, so a
 * walk that places nothing pays nothing; every peer builds it from the same events, so every peer prices alike.
 */
export class QueueModel {
  private readonly jobs = new Map<string, Job[]>()
  /**
   * per peer, when each slot frees once all its jobs ran: a query or a job ready no earlier than the peer's last
   * job (a walk's usual case: siblings ready together) is answered from it, not by a new schedule
   */
  private readonly tail = new Map<string, number[]>()
  private readonly building = new Set<string>()

  constructor (
    private readonly book: LoadBook,
    private readonly history: WorkflowHistory,
    readonly now = Date.now()
  ) {}

  /** Expected run time of an instance's step, ms (learned from earlier requests of its workflow). */
  msOf (s: RequestState, step: string): number {
    return this.history.expectedMs(s.started.workflow, step) ?? DEFAULT_STEP_MS
  }

  /**
   * When an instance's inputs are expected to exist: now (or when they came) when it is runnable, else when its
   * last pending producer is expected to end (a producer not running yet: a step time later than that). In
   * dataflow mode a producer that posts its outputs mid-run (learned: history.expectedPostMs) makes them exist
   * that far into its run, while it keeps its slot to its end: taking the end for both made a peer whose
   * producers end together look free for their consumers, which then waited there for a slot half a step at
   * postAt 0.5 while other peers idled (epigenomics: 13-29 ms per step, 262 ms per request).
   */
  readyAt (s: RequestState, rec: InstanceRecord): number {
    if (rec.runnable === true) return Math.min(rec.runnableAt ?? this.now, this.now)
    let at = this.now
    for (const { rec: p } of pendingProducers(s, rec.step, rec.index)) at = Math.max(at, this.outputsOf(s, p))
    return at
  }

  /** When a producer's outputs are expected to exist: its end, or in dataflow mode as far into its run as it posts. */
  private outputsOf (s: RequestState, p: InstanceRecord): number {
    const end = this.endOf(s, p)
    if (s.started.mode !== 'dataflow') return end
    const post = this.history.expectedPostMs(s.started.workflow, p.step)
    const ms = this.msOf(s, p.step)
    return post === undefined ? end : end - ms + Math.min(ms, post)
  }

  /**
   * When a producer is expected to end: a runnable one starts when a slot of its peer frees behind the work
   * ready before it (runnable is not running: a producer queued behind full slots ends a round later, and
   * its consumers' data with it).
   */
  private endOf (s: RequestState, p: InstanceRecord): number {
    const ms = this.msOf(s, p.step)
    if (p.runnable !== true) return this.now + 2 * ms
    const ready = Math.min(p.runnableAt ?? this.now, this.now)
    const peer = p.winner?.peer
    // a peer whose queue is being read right now (a chain of claims made ahead back to it) counts no wait
    const wait = peer === undefined || this.building.has(peer) ? 0 : slotWait(this.jobsOf(peer), this.book.slots(peer), ready, this.now, true)
    return (wait > 0 ? Math.max(ready, this.now) + wait : ready) + ms
  }

  private jobsOf (peer: string): Job[] {
    let list = this.jobs.get(peer)
    if (list !== undefined) return list
    list = []
    this.building.add(peer)
    for (const { rec, s } of this.book.held(peer)) {
      list.push({ readyAt: this.readyAt(s, rec), ms: this.msOf(s, rec.step) })
    }
    this.building.delete(peer)
    list.sort((a, b) => a.readyAt - b.readyAt)
    this.jobs.set(peer, list)
    return list
  }

  /**
   * Work expected on `peer` that the load book does not show yet (another placer's instance where it will go, or this walk's
   * choice, added before its claim enters the book: the peer's jobs are read from the book first, so it counts once).
   */
  add (peer: string, job: Job): void {
    const list = this.jobsOf(peer)
    const free = this.tail.get(peer)
    if (list.length === 0 || list[list.length - 1].readyAt <= job.readyAt) {
      list.push(job)
      if (free !== undefined) schedule(free, job, this.now)
      return
    }
    let i = list.length
    while (i > 0 && list[i - 1].readyAt > job.readyAt) i--
    list.splice(i, 0, job)
    this.tail.delete(peer)
  }

  /**
   * Expected wait of work ready at `readyAt` on `peer`, ms; with its run time `ms`, plus the most it would delay
   * work the peer holds that is ready later (insertionCost).
   */
  waitOn (peer: string, readyAt: number, ms?: number): number {
    const list = this.jobsOf(peer)
    if (list.length > 0 && list[list.length - 1].readyAt > readyAt) {
      return ms === undefined ? slotWait(list, this.book.slots(peer), readyAt, this.now) : insertionCost(list, this.book.slots(peer), readyAt, ms, this.now)
    }
    let free = this.tail.get(peer)
    if (free === undefined) {
      free = new Array<number>(Math.max(1, this.book.slots(peer))).fill(-Infinity)
      for (const j of list) schedule(free, j, this.now)
      this.tail.set(peer, free)
    }
    return Math.max(0, earliest(free) - Math.max(readyAt, this.now))
  }

  /** Everything `peer` holds or is expected to (a tie-break that spreads equal-cost siblings). */
  count (peer: string): number {
    return this.jobs.get(peer)?.length ?? this.book.load(peer)
  }

  slots (peer: string): number { return this.book.slots(peer) }
}
