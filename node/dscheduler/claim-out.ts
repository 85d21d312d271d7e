import { nextAttempt } from './claims.ts'
import type { InstanceRecord, RequestState } from './request-state.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/** Claims published together at most (the codec takes up to 1024 per event). */
export const MAX_CLAIMS_PER_MESSAGE = 256

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

/**
 * How this peer's claims go out: the claims of one placement walk (for this peer or, as placer, for others)
 * together in one message, and quiet claims (see `claim`) only when they must be heard.
 */
export class ClaimOut {
  /** Claims made during one placement walk, published together. */
  private readonly batch: Array<{ step: string, index: number | null, attempt: number, peer: string, incarnation: number }> = []
  private batchTs = 0

  constructor (
    private readonly sched: DScheduler,
    /** re-examines an instance once claimed (it enters the load book, and fires when it landed here) */
    private readonly examine: (t: Tracked, s: RequestState, rec: InstanceRecord) => void
  ) {}

  /** Whether the walk's batch is full and should go out now. */
  get full (): boolean { return this.batch.length >= MAX_CLAIMS_PER_MESSAGE }

  /**
   * Whether a claim of this peer for itself may stay quiet: every input is here, and this peer is nearly idle
   * (this claim and at most one other unfinished: a chain's running step and the next one, claimed ahead).
   * Other peers' placers count only the claims they hear, so a peer busier than that says all its quiet claims
   * at once (in the same message as this walk's claims): otherwise they see free slots here and pile more on.
   */
  mayStayQuiet (rec: InstanceRecord, producers: Set<string>): boolean {
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

  /**
   * Claims `rec` for `peer`. A quiet claim (this peer's own, every input here or made here) is not published
   * at once: nobody has to push data to it, and the runner's own events (output-ready, step-done) carry the
   * claim, so a step that ends within QUIET_CLAIM_FRACTION of claimTimeoutMs costs no claim message at all (a
   * chain kept on one peer: one message per step instead of two). One still running then is claimed aloud,
   * well before a peer waiting for its placer gives up on it.
   */
  claim (t: Tracked, s: RequestState, rec: InstanceRecord, peer: string, incarnation: number, quiet = false): void {
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

  /** Publishes the walk's claims: one step-claimed if all are this peer's own, else one steps-assigned. */
  flush (s: RequestState): void {
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
