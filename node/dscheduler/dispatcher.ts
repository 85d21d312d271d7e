import { bestPeer, type PlacementQuery } from './placement.ts'
import { claimable, inputBytes, nextAttempt, winnerOf } from './claims.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import { InstanceRunner } from './runner.ts'
import { adoptionEvents } from './adopt.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'
import type { LoadedWorkflow } from './types.ts'

/** Claims published together at most (the codec takes up to 1024 per event). */
const MAX_CLAIMS_PER_MESSAGE = 256

/** A quiet claim is published once this fraction of claimTimeoutMs passed with its instance unfinished. */
const QUIET_CLAIM_FRACTION = 0.5
/** A peer with more unfinished instances than this (its own claim included) claims aloud. */
const QUIET_MAX_LOAD = 2

/**
 * Whether a claim of this peer on `rec` may stay quiet: no earlier claim to supersede (a takeover must be heard)
 * and every input is here or made here, so no producer elsewhere needs to know where to push.
 */
function quietAllowed (rec: InstanceRecord, producers: Set<string>, self: string): boolean {
  if (rec.claims.size > 0) return false
  for (const p of producers) if (p !== self) return false
  return true
}

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
      // a result accepted from a claim that lost since, to this peer's own: vouch for it (adopt.ts)
      const w = rec.done !== undefined || rec.failed !== undefined ? winnerOf(rec.gid, rec, this.sched.claimRules) : undefined
      if (w !== undefined) for (const ev of adoptionEvents(s, rec, self, w)) void this.sched.c.bus.publish(ev)
      return
    }
    this.refreshWinner(t, s, rec)
    const def = s.step(rec.step)
    const wasRunnable = rec.runnable === true
    rec.runnable = s.inputsReady(rec)
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
      this.sched.metrics.claims++
      if (s.started.mode === 'dataflow') {
        // every instance claimed here and not fired yet will want an instance of its module: warm that many
        const { code, memoryMb } = runner.spec
        let waiting = 0
        for (const r of t.runners.values()) if (!r.fired && !r.finished && r.spec.memoryMb === memoryMb && r.spec.code.cid === code.cid) waiting++
        this.sched.prewarmer.claimed(s, runner.spec, waiting)
      }
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
   * The peer that places an instance for everyone: the winner of the producer its first step input reads
   * (it learns first that the data exists, usually holds it, and every peer names the same one), or the peer
   * the request started at when it reads no step. Undefined when that peer is not live: then every peer
   * places it with the same cost walk, as for a placer that stayed silent.
   */
  placerOf (s: RequestState, rec: InstanceRecord, isLive: (peer: string) => boolean): string | undefined {
    const def = s.step(rec.step)
    let sawStep = false
    const sources = def.foreach !== undefined ? [def.foreach, ...Object.values(def.in)] : Object.values(def.in)
    for (const src of sources) {
      for (const ref of src.kind === 'oneOf' ? src.refs : [src]) {
        if (ref.kind !== 'step') continue
        sawStep = true
        const producer = s.step(ref.step).foreach === undefined
          ? s.instances.get(instanceKey(ref.step, null))
          : (rec.index !== null ? s.instances.get(instanceKey(ref.step, rec.index)) : undefined) ?? s.instancesOf(ref.step)[0]
        const peer = producer?.winner?.peer
        if (peer !== undefined && isLive(peer)) return peer
      }
    }
    if (sawStep) return undefined
    return isLive(s.started.from) ? s.started.from : undefined
  }

  /**
   * Walks the unplaced instances in workflow order (the same on every peer) and places those this peer is the
   * placer of on the cheapest live peer, counting what this walk already placed: one steps-assigned message
   * claims them all, for the peers chosen. Instances whose placer is another peer wait for its assignment;
   * a placer silent for claimTimeoutMs (slow, or gone) is passed over, and then every peer walks them alike,
   * each claiming what lands on itself; a peer picked that way but silent is passed over in turn.
   */
  place (t: Tracked, s: RequestState): void {
    if (t.unplaced.size === 0) return
    const { self, load, history, init } = this.sched
    const membership = this.sched.c.membership
    const live = membership.live()
    const isLive = (p: string): boolean => p === self || membership.isLive(p)
    const now = Date.now()
    const extra = new Map<string, number>()
    const recs = [...t.unplaced].sort((a, b) => (t.order.get(a.step) ?? 0) - (t.order.get(b.step) ?? 0) || (a.index ?? -1) - (b.index ?? -1))
    let nextCheck = Infinity
    for (const rec of recs) {
      if (rec.winner !== undefined) { t.unplaced.delete(rec); continue }
      const placer = this.placerOf(s, rec, isLive)
      if (placer !== undefined && placer !== self) {
        if (rec.awaitingPlacer?.peer !== placer) rec.awaitingPlacer = { peer: placer, since: now }
        const due = rec.awaitingPlacer.since + init.claimTimeoutMs
        if (due > now) { nextCheck = Math.min(nextCheck, due - now); continue }
      }
      // an instance this peer already expects elsewhere stays there until that peer claims or its time is up:
      // it counts as that peer's load, so a later walk (after this peer's own claims raised its load) does not
      // hand it out again
      const kept = rec.expect
      if (placer !== self && kept !== undefined && kept.since + init.claimTimeoutMs > now && live.includes(kept.peer)) {
        extra.set(kept.peer, (extra.get(kept.peer) ?? 0) + 1)
        nextCheck = Math.min(nextCheck, kept.since + init.claimTimeoutMs - now)
        continue
      }
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
      // a claim made here enters the load book at once (claim -> examine); `extra` counts only the instances
      // this walk expects another peer to claim
      if (placer === self) {
        const incarnation = best === self ? membership.incarnation : membership.incarnationOf(best)
        if (incarnation !== undefined) {
          this.claim(t, s, rec, best, incarnation, best === self && this.mayStayQuiet(rec, bytes.producers))
          if (this.batch.length >= MAX_CLAIMS_PER_MESSAGE) this.flushClaims(s)
          continue
        }
      }
      if (best === self) {
        this.claim(t, s, rec, self, membership.incarnation, this.mayStayQuiet(rec, bytes.producers))
        if (this.batch.length >= MAX_CLAIMS_PER_MESSAGE) this.flushClaims(s)
        continue
      }
      extra.set(best, (extra.get(best) ?? 0) + 1)
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

  /**
   * Whether a claim of this peer for itself may stay quiet: every input is here, and this peer is nearly idle
   * (this claim and at most one other unfinished: a chain's running step and the next one, claimed ahead).
   * Other peers' placers count only the claims they hear, so a peer busier than that says all its quiet claims
   * at once (in the same message as this walk's claims): otherwise they see free slots here and pile more on.
   */
  private mayStayQuiet (rec: InstanceRecord, producers: Set<string>): boolean {
    const { self, load } = this.sched
    if (!quietAllowed(rec, producers, self)) return false
    if (load.load(self) + 1 <= QUIET_MAX_LOAD) return true
    this.sayAllQuietClaims()
    return false
  }

  /** Publishes every request's quiet claims whose instances still run, due or not. */
  private sayAllQuietClaims (): void {
    for (const t of this.sched.requests.values()) {
      if (t.quietClaims === undefined || t.quietClaims.size === 0 || t.state === undefined) continue
      this.sayQuietClaims(t, t.state, true)
    }
  }

  /** Claims made during one placement walk (for this peer or, as placer, for others), published together. */
  private readonly batch: Array<{ step: string, index: number | null, attempt: number, peer: string, incarnation: number }> = []
  private batchTs = 0

  /**
   * Claims `rec` for `peer`. A quiet claim (this peer's own, every input here or made here) is not published
   * at once: nobody has to push data to it, and the runner's own events (output-ready, step-done) carry the
   * claim, so a step that ends within QUIET_CLAIM_FRACTION of claimTimeoutMs costs no claim message at all (a
   * chain kept on one peer: one message per step instead of two). One still running then is claimed aloud,
   * well before a peer waiting for its placer gives up on it.
   */
  private claim (t: Tracked, s: RequestState, rec: InstanceRecord, peer: string, incarnation: number, quiet = false): void {
    const { self, metrics } = this.sched
    const attempt = nextAttempt(rec)
    if ([...rec.claims.entries()].some(([p, cl]) => p !== peer && cl.attempt >= rec.floor)) metrics.takeovers++
    if (peer !== self) metrics.assigned++
    t.unplaced.delete(rec)
    if (quiet) {
      const ts = Date.now()
      rec.claims.set(peer, { attempt, incarnation, ts })
      ;(t.quietClaims ??= new Map()).set(rec, { step: rec.step, index: rec.index, attempt, ts })
      if (t.quietClaimsTimer === undefined) {
        t.quietClaimsTimer = setTimeout(() => { this.sayQuietClaims(t, s) }, this.sched.init.claimTimeoutMs * QUIET_CLAIM_FRACTION)
        t.quietClaimsTimer.unref()
      }
      this.examine(t, s, rec)
      return
    }
    if (this.batch.length === 0) this.batchTs = Date.now()
    rec.claims.set(peer, { attempt, incarnation, ts: this.batchTs })
    this.batch.push({ step: rec.step, index: rec.index, attempt, peer, incarnation })
    // it fires now (when it landed here); the claims go out with the others of this walk, in the same tick
    this.examine(t, s, rec)
  }

  /** Publishes the quiet claims whose instances still run (each with the time it was made), forgets the rest. */
  private sayQuietClaims (t: Tracked, s: RequestState, all = false): void {
    if (!all) t.quietClaimsTimer = undefined
    const quiet = t.quietClaims
    if (quiet === undefined || t.finishing === true) return
    const { self, init } = this.sched
    const now = Date.now()
    const byTs = new Map<number, Array<{ step: string, index: number | null, attempt: number }>>()
    let next = Infinity
    for (const [rec, q] of quiet) {
      const due = q.ts + init.claimTimeoutMs * QUIET_CLAIM_FRACTION
      const mine = rec.claims.get(self)
      if (rec.done !== undefined || rec.failed !== undefined || mine === undefined || mine.attempt !== q.attempt || rec.winner?.peer !== self) { quiet.delete(rec); continue }
      if (due > now && !all) { next = Math.min(next, due - now); continue }
      quiet.delete(rec)
      const list = byTs.get(q.ts) ?? []
      list.push({ step: q.step, index: q.index, attempt: q.attempt })
      byTs.set(q.ts, list)
    }
    for (const [ts, list] of byTs) {
      for (let i = 0; i < list.length; i += MAX_CLAIMS_PER_MESSAGE) this.publishOwnClaims(s, ts, list.slice(i, i + MAX_CLAIMS_PER_MESSAGE))
    }
    if (next !== Infinity) {
      t.quietClaimsTimer = setTimeout(() => { this.sayQuietClaims(t, s) }, next + 1)
      t.quietClaimsTimer.unref()
    }
  }

  /** One step-claimed for claims this peer made for itself at `ts` (at most MAX_CLAIMS_PER_MESSAGE). */
  private publishOwnClaims (s: RequestState, ts: number, claims: Array<{ step: string, index: number | null, attempt: number }>): void {
    const { self, c, init } = this.sched
    const [first, ...also] = claims
    void c.bus.publish({
      type: 'step-claimed', from: self, ts, request: s.id, ...first,
      incarnation: c.membership.incarnation, slots: init.slots, start: s.startId, ...(also.length > 0 ? { also } : {})
    })
  }

  private flushClaims (s: RequestState): void {
    if (this.batch.length === 0) return
    const { self, c, init } = this.sched
    const batch = this.batch.splice(0)
    if (batch.every(b => b.peer === self)) {
      // only claims of its own: the plain step-claimed every peer also makes when it places without a placer
      this.publishOwnClaims(s, this.batchTs, batch.map(({ step, index, attempt }) => ({ step, index, attempt })))
      return
    }
    void c.bus.publish({ type: 'steps-assigned', from: self, ts: this.batchTs, request: s.id, slots: init.slots, start: s.startId, claims: batch })
  }
}
