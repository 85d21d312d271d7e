import { bestPeer, type PlacementQuery } from './placement.ts'
import { inputBytes } from './claims.ts'
import { QueueModel } from './queue-model.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import type { ClaimOut } from './claim-out.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/**
 * Placement: every claimable instance nobody won goes to the cheapest peer (cost model in placement.ts, queues
 * in queue-model.ts), computed alike on every peer from the claims all of them hear, so only the chosen peer
 * claims and nobody waits on a timer.
 */
export class Placer {
  constructor (private readonly sched: DScheduler, private readonly out: ClaimOut) {}

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
   * placer of on the cheapest live peer: one steps-assigned message claims them all, for the peers chosen.
   * Instances whose placer is another peer wait for its assignment, and count meanwhile as that placer's soon
   * work (their data is there, so they usually stay): a placer that did not count them sent its own
   * consumers to a peer that was about to keep its own, and both moved data. A placer silent for
   * claimTimeoutMs (slow, or gone) is passed over, and then every peer walks its instances alike, each claiming
   * what lands on itself; a peer picked that way but silent is passed over in turn.
   */
  place (t: Tracked, s: RequestState): void {
    if (t.unplaced.size === 0) return
    const { self, load, history, init } = this.sched
    const membership = this.sched.c.membership
    const live = membership.live()
    const isLive = (p: string): boolean => p === self || membership.isLive(p)
    const now = Date.now()
    const model = new QueueModel(load, history, now)
    const recs = [...t.unplaced].sort((a, b) => (t.order.get(a.step) ?? 0) - (t.order.get(b.step) ?? 0) || (a.index ?? -1) - (b.index ?? -1))
    let nextCheck = Infinity
    const walk: Array<{ rec: InstanceRecord, placer: string | undefined }> = []
    // instances other peers place (or this peer expects another to claim): that peer's soon work, counted
    // before this walk places anything, and only if it does
    const soon: Array<{ peer: string, rec: InstanceRecord }> = []
    for (const rec of recs) {
      if (rec.winner !== undefined) { t.unplaced.delete(rec); continue }
      const placer = this.placerOf(s, rec, isLive)
      if (placer !== undefined && placer !== self) {
        if (rec.awaitingPlacer?.peer !== placer) rec.awaitingPlacer = { peer: placer, since: now }
        const due = rec.awaitingPlacer.since + init.claimTimeoutMs
        if (due > now) {
          nextCheck = Math.min(nextCheck, due - now)
          soon.push({ peer: placer, rec })
          continue
        }
      }
      // an instance this peer already expects elsewhere stays there until that peer claims or its time is up:
      // it counts as that peer's work, so a later walk (after this peer's own claims) does not hand it out again
      const kept = rec.expect
      if (placer !== self && kept !== undefined && kept.since + init.claimTimeoutMs > now && live.includes(kept.peer)) {
        soon.push({ peer: kept.peer, rec })
        nextCheck = Math.min(nextCheck, kept.since + init.claimTimeoutMs - now)
        continue
      }
      walk.push({ rec, placer })
    }
    if (walk.length > 0) for (const { peer, rec } of soon) model.add(peer, { readyAt: model.readyAt(s, rec), ms: model.msOf(s, rec.step) })
    for (const { rec, placer } of walk) {
      const bytes = inputBytes(s, rec.step, rec.index, history)
      const readyAt = model.readyAt(s, rec)
      const q: PlacementQuery = {
        key: rec.gid,
        candidates: live,
        bytesAt: bytes.bytesAt,
        totalBytes: bytes.total,
        producers: bytes.producers,
        queueMs: p => model.waitOn(p, readyAt),
        spread: p => model.count(p) / Math.max(1, model.slots(p)),
        bytesPerMs: init.linkMiBps * 1048.576,
        hopMs: history.hopMs(init.hopMs)
      }
      const best = bestPeer(q, rec.excluded)
      if (best === undefined) continue
      // counted before the claim enters the load book (claim -> examine), so it counts once
      model.add(best, { readyAt, ms: model.msOf(s, rec.step) })
      if (placer === self) {
        const incarnation = best === self ? membership.incarnation : membership.incarnationOf(best)
        if (incarnation !== undefined) {
          this.out.claim(t, s, rec, best, incarnation, best === self && this.out.mayStayQuiet(rec, bytes.producers))
          if (this.out.full) this.out.flush(s)
          continue
        }
      }
      if (best === self) {
        this.out.claim(t, s, rec, self, membership.incarnation, this.out.mayStayQuiet(rec, bytes.producers))
        if (this.out.full) this.out.flush(s)
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
    this.out.flush(s)
    if (nextCheck !== Infinity) {
      clearTimeout(t.timer)
      t.timer = setTimeout(() => { this.sched.pump(s.id) }, nextCheck + 5)
      t.timer.unref()
    }
  }
}
