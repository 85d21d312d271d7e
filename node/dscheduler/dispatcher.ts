import { bestPeer, type PlacementQuery } from './placement.ts'
import { claimable, inputBytes, nextAttempt, winnerOf } from './claims.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import { InstanceRunner } from './runner.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'
import type { LoadedWorkflow } from './types.ts'

/** Claims published together at most (the codec takes up to 1024 per event). */
const MAX_CLAIMS_PER_MESSAGE = 256

/** Expected run time of a step nobody has timed yet, ms. */
const DEFAULT_STEP_MS = 50

/**
 * Per touched instance: who wins it, whether it can run, and whether this peer fires it. Then placement:
 * every claimable instance nobody won goes to the cheapest peer (cost model in placement.ts), computed alike
 * on every peer from the claims all of them hear, so only the chosen peer claims and nobody waits on a timer.
 */
export class Dispatcher {
  constructor (private readonly sched: DScheduler) {}

  /** Recomputes the winning claim; a local runner whose claim no longer wins is superseded (ctx.signal aborts). */
  refreshWinner (t: Tracked, s: RequestState, rec: InstanceRecord): void {
    const { self } = this.sched
    const w = winnerOf(rec.gid, rec, this.sched.claimRules)
    const prev = rec.winner
    rec.winner = w
    if (w !== undefined && (prev?.peer !== w.peer || prev.attempt !== w.attempt || prev.incarnation !== w.incarnation)) this.sched.applier.replayHeld(t, s, rec)
    const key = instanceKey(rec.step, rec.index)
    const runner = t.runners.get(key)
    if (runner === undefined) return
    const stillOurs = w !== undefined && w.peer === self && w.attempt === runner.fence.attempt && w.incarnation === runner.fence.incarnation
    if (stillOurs) return
    if (!runner.finished) {
      if (runner.fired) this.sched.log('%s/%s: superseded by %s\'s claim', s.id, key, w?.peer)
      runner.supersede()
      this.sched.metrics.claimsLost++
    }
    t.runners.delete(key)
  }

  examine (t: Tracked, s: RequestState, rec: InstanceRecord): void {
    const { self, load } = this.sched
    if (rec.done !== undefined || rec.failed !== undefined || s.skipped(rec.step) === 'yes') {
      t.unplaced.delete(rec)
      if (load.set(rec.gid, undefined)) this.loadChanged()
      return
    }
    this.refreshWinner(t, s, rec)
    const def = s.step(rec.step)
    const wasRunnable = rec.runnable === true
    rec.runnable = Object.values(def.in).every(src => s.resolve(src, rec.step, rec.index).state !== 'pending')
    // consumers are claimed one level ahead of producers that run: this one starting may make them claimable
    if (rec.runnable && !wasRunnable && s.started.mode === 'dataflow') for (const name of s.readersOfStep(rec.step)) this.sched.applier.touchStep(t, s, name)
    if (load.set(rec.gid, rec.winner?.peer)) this.loadChanged()
    if (rec.winner !== undefined) {
      t.unplaced.delete(rec)
      if (rec.winner.peer === self) this.drive(t, s, rec)
      return
    }
    if (claimable(s, rec.step, rec.index, this.sched.history)) t.unplaced.add(rec)
    else t.unplaced.delete(rec)
  }

  /** The instance is ours: pre-warm it (dataflow) and fire it once its inputs exist (or at once if eager). */
  private drive (t: Tracked, s: RequestState, rec: InstanceRecord): void {
    const key = instanceKey(rec.step, rec.index)
    let runner = t.runners.get(key)
    if (runner === undefined) {
      const w = rec.winner as NonNullable<InstanceRecord['winner']>
      runner = new InstanceRunner(this.sched.runnerHost, s, t.loaded as LoadedWorkflow, rec.step, rec.index)
      runner.fence = { attempt: w.attempt, incarnation: w.incarnation, start: s.startId }
      t.runners.set(key, runner)
      if (s.started.mode === 'dataflow') runner.prewarm()
    }
    if (runner.fired || s.skipped(rec.step) !== 'no') return
    if (rec.runnable === true) runner.readyAt ??= Date.now()
    if (rec.runnable === true || (s.step(rec.step).trigger === 'eager' && s.started.mode === 'dataflow')) runner.fire()
  }

  /** A peer's load changed: requests with instances waiting for placement look again. */
  private loadChanged (): void {
    for (const [id, t] of this.sched.requests) if (t.unplaced.size > 0 && t.finishing !== true) this.sched.pump(id)
  }

  /**
   * Walks the unplaced instances in workflow order (the same on every peer), places each on the cheapest
   * live peer, counting what this walk already placed, and claims those that land here. A peer picked but
   * silent for claimTimeoutMs (slow to load the workflow, or gone) is passed over for that instance.
   */
  place (t: Tracked, s: RequestState): void {
    if (t.unplaced.size === 0) return
    const { self, load, history, init } = this.sched
    const live = this.sched.c.membership.live()
    const now = Date.now()
    const extra = new Map<string, number>()
    const recs = [...t.unplaced].sort((a, b) => (t.order.get(a.step) ?? 0) - (t.order.get(b.step) ?? 0) || (a.index ?? -1) - (b.index ?? -1))
    let nextCheck = Infinity
    for (const rec of recs) {
      if (rec.winner !== undefined) { t.unplaced.delete(rec); continue }
      const bytes = inputBytes(s, rec.step, rec.index, history)
      const q: PlacementQuery = {
        key: rec.gid,
        candidates: live,
        bytesAt: bytes.bytesAt,
        totalBytes: bytes.total,
        producers: bytes.producers,
        expectedMs: history.expectedMs(s.started.workflow, rec.step) ?? DEFAULT_STEP_MS,
        load: p => load.load(p) + (extra.get(p) ?? 0),
        slots: p => load.slots(p),
        bytesPerMs: init.linkMiBps * 1048.576,
        hopMs: init.hopMs
      }
      const best = bestPeer(q, rec.excluded)
      if (best === undefined) continue
      extra.set(best, (extra.get(best) ?? 0) + 1)
      if (best === self) {
        this.claim(t, s, rec)
        if (this.batch.length >= MAX_CLAIMS_PER_MESSAGE) this.flushClaims(s)
        continue
      }
      if (rec.expect?.peer !== best) rec.expect = { peer: best, since: now }
      const due = rec.expect.since + init.claimTimeoutMs
      if (due <= now) {
        // the chosen peer never claimed: pass it over for this instance and place again at once
        ;(rec.excluded ??= new Set()).add(best)
        rec.expect = undefined
        nextCheck = 0
      } else nextCheck = Math.min(nextCheck, due - now)
    }
    this.flushClaims(s)
    if (nextCheck !== Infinity) {
      clearTimeout(t.timer)
      t.timer = setTimeout(() => { this.sched.pump(s.id) }, nextCheck + 5)
      t.timer.unref()
    }
  }

  /** Claims made during one placement walk, published together (one message) when it ends. */
  private readonly batch: Array<{ step: string, index: number | null, attempt: number }> = []
  private batchTs = 0

  private claim (t: Tracked, s: RequestState, rec: InstanceRecord): void {
    const { self, metrics, c } = this.sched
    const attempt = nextAttempt(rec)
    if ([...rec.claims.entries()].some(([p, cl]) => p !== self && cl.attempt >= rec.floor)) metrics.takeovers++
    metrics.claims++
    if (this.batch.length === 0) this.batchTs = Date.now()
    const claim = { attempt, incarnation: c.membership.incarnation, ts: this.batchTs }
    rec.claims.set(self, claim)
    t.unplaced.delete(rec)
    this.batch.push({ step: rec.step, index: rec.index, attempt })
    // it fires now; the claim goes out with the others of this walk, in the same tick
    this.examine(t, s, rec)
  }

  private flushClaims (s: RequestState): void {
    if (this.batch.length === 0) return
    const { self, c, init } = this.sched
    const [first, ...also] = this.batch.splice(0)
    void c.bus.publish({
      type: 'step-claimed', from: self, ts: this.batchTs, request: s.id, ...first,
      incarnation: c.membership.incarnation, slots: init.slots, start: s.startId, ...(also.length > 0 ? { also } : {})
    })
  }
}
