import { claimsOf, namedInstance, recordClaim } from './claims.ts'
import { claimWinner } from './placement.ts'
import { MAX_HELD_EVENTS } from './applier.ts'
import type { InstanceRecord, RequestState } from './request-state.ts'
import type { RequestEvent, StepDone } from '../../protocols/events/index.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/** A finished record rewritten for late results waits this long, so a burst of them costs one write. */
const REPERSIST_MS = 250

/**
 * After a request is over here, its view still has to end where everyone's does. The finisher's
 * `request-done` can overtake a step's `step-done` (two publishers, a slower validation, a sync round), and
 * a peer that lost a `step-done` on gossip would, once it holds the `request-done`, stop syncing the request
 * (RequestEventLog.done): its view would show that step running for ever. So:
 * - results heard after the finish are still recorded (nothing runs or is placed any more), fenced as
 *   before: only the winning claim's step-done counts;
 * - a request that ended `ok` while instances are unfinished here is followed by anti-entropy until they are
 *   done (`scheduler:request-settling` / `scheduler:request-settled`, wired to RequestLogs.follow);
 * - the durable record is rewritten when a late result changed it.
 */
export class LateResults {
  constructor (private readonly sched: DScheduler) {}

  /** The request finished here: follow it until its instances are settled, if it ended ok and some are not. */
  finished (t: Tracked, status: 'ok' | 'failed'): void {
    const s = t.state
    if (s === undefined || status !== 'ok' || unsettled(s) === 0) return
    t.settling = true
    this.sched.safeDispatch('scheduler:request-settling', s.id)
  }

  /** An event of a request that is finishing or finished here. */
  apply (t: Tracked, s: RequestState, ev: RequestEvent): void {
    let changed = false
    switch (ev.type) {
      case 'step-claimed':
      case 'steps-assigned': {
        if (ev.start !== undefined && ev.start !== s.startId) return
        for (const c of claimsOf(ev)) {
          const rec = namedInstance(s, c.step, c.index)
          if (rec === undefined || rec.done !== undefined) continue
          recordClaim(rec, c.peer, { attempt: c.attempt, incarnation: c.incarnation, ts: ev.ts })
          // a claim heard late may make a held step-done the winner's
          for (const held of rec.held ?? []) if (held.type === 'step-done' && this.record(s, rec, held)) changed = true
        }
        break
      }
      case 'step-done': {
        const rec = namedInstance(s, ev.step, ev.index)
        if (rec === undefined || rec.done !== undefined || (ev.start !== undefined && ev.start !== s.startId)) return
        recordClaim(rec, ev.from, { attempt: ev.attempt, incarnation: ev.incarnation, ts: ev.ts })
        if (this.record(s, rec, ev)) changed = true
        else {
          const held = (rec.held ??= [])
          held.push(ev)
          if (held.length > MAX_HELD_EVENTS) held.shift()
        }
        break
      }
      default: return
    }
    if (changed) this.changed(t, s)
  }

  /**
   * Records a step-done when it comes from the claim that wins among all claims heard: liveness no longer
   * matters (a claimant may have finished and left), only the claim order every peer agrees on.
   */
  private record (s: RequestState, rec: InstanceRecord, ev: StepDone): boolean {
    const claims = [...rec.claims].filter(([, c]) => c.attempt >= rec.floor).map(([peer, c]) => ({ peer, attempt: c.attempt, ts: c.ts }))
    const w = claimWinner(rec.gid, claims)
    const claim = w === undefined ? undefined : rec.claims.get(w.peer)
    if (w === undefined || claim === undefined || w.peer !== ev.from || claim.attempt !== ev.attempt || claim.incarnation !== ev.incarnation) return false
    rec.winner = { peer: w.peer, ...claim }
    return s.recordDone(ev)
  }

  private changed (t: Tracked, s: RequestState): void {
    if (t.settling === true && unsettled(s) === 0) {
      t.settling = false
      this.sched.safeDispatch('scheduler:request-settled', s.id)
    }
    // a record written at the finish said running: write it again (once for a burst)
    if (t.finishedAt === undefined || t.timer !== undefined) return
    t.timer = setTimeout(() => {
      t.timer = undefined
      if (this.sched.requests.get(s.id) !== t) return
      this.sched.reader.persist(t).catch(err => { this.sched.log.error('request %s: record not rewritten: %s', s.id, (err as Error).message) })
    }, REPERSIST_MS)
  }
}

/** Instances neither done nor failed whose step was not skipped. */
export function unsettled (s: RequestState): number {
  let n = 0
  for (const rec of s.instances.values()) if (rec.done === undefined && rec.failed === undefined && s.skipped(rec.step) !== 'yes') n++
  return n
}
