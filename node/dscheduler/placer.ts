import { bestPeer, type PlacementQuery } from './placement.ts'
import { inputBytes, type InputBytes } from './claims.ts'
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
   * Instances whose placer is another peer wait for its assignment; this walk places them too, in the model
   * only, as that placer will (same events, same costs), so that the peers it will use count as busy: a placer
   * blind to them sent its consumers to a peer about to keep its own, and both moved data. Two rounds: first
   * every instance whose cheapest peer holds (or makes) its data and can start it without a wait (a consumer
   * that fits at its data stays, whoever places it), then the rest in workflow order. A placer silent for
   * claimTimeoutMs (slow, or gone) is passed over, and then every peer walks its instances alike, each claiming
   * what lands on itself; a peer picked that way but silent is passed over in turn.
   */
  place (t: Tracked, s: RequestState): void {
    if (t.unplaced.size === 0) return
    const { self, init } = this.sched
    const membership = this.sched.c.membership
    const live = membership.live()
    const isLive = (p: string): boolean => p === self || membership.isLive(p)
    const now = Date.now()
    const recs = [...t.unplaced].sort((a, b) => (t.order.get(a.step) ?? 0) - (t.order.get(b.step) ?? 0) || (a.index ?? -1) - (b.index ?? -1))
    let nextCheck = Infinity
    const walk: Entry[] = []
    const kept: Array<{ peer: string, rec: InstanceRecord }> = []
    let mine = 0
    for (const rec of recs) {
      if (rec.winner !== undefined) { t.unplaced.delete(rec); continue }
      const placer = this.placerOf(s, rec, isLive)
      if (placer !== undefined && placer !== self) {
        if (rec.awaitingPlacer?.peer !== placer) rec.awaitingPlacer = { peer: placer, since: now }
        const due = rec.awaitingPlacer.since + init.claimTimeoutMs
        if (due > now) {
          nextCheck = Math.min(nextCheck, due - now)
          walk.push({ rec, placer, mine: false })
          continue
        }
      }
      // an instance this peer already expects elsewhere stays there until that peer claims or its time is up:
      // it counts as that peer's work, so a later walk (after this peer's own claims) does not hand it out again
      const expected = rec.expect
      if (placer !== self && expected !== undefined && expected.since + init.claimTimeoutMs > now && live.includes(expected.peer)) {
        kept.push({ peer: expected.peer, rec })
        nextCheck = Math.min(nextCheck, expected.since + init.claimTimeoutMs - now)
        continue
      }
      walk.push({ rec, placer, mine: true })
      mine++
    }
    if (mine > 0) {
      const model = new QueueModel(this.sched.load, this.sched.history, now)
      for (const { peer, rec } of kept) model.add(peer, { readyAt: model.readyAt(s, rec), ms: model.msOf(s, rec.step) })
      const later: Entry[] = []
      for (const e of walk) {
        // no peer holding its data can start it at once: round two (skips pricing every peer twice)
        if (!this.homeFree(s, e, model)) { later.push(e); continue }
        const best = this.choose(t, s, e, model, live)
        if (best === undefined) continue
        if (!this.startsHome(s, e, best, model)) { later.push(e); continue }
        nextCheck = Math.min(nextCheck, this.commit(t, s, e, best, model, now))
      }
      for (const e of later) {
        const best = this.choose(t, s, e, model, live)
        if (best !== undefined) nextCheck = Math.min(nextCheck, this.commit(t, s, e, best, model, now))
      }
      this.out.flush(s)
    }
    if (nextCheck !== Infinity) {
      clearTimeout(t.timer)
      t.timer = setTimeout(() => { this.sched.pump(s.id) }, nextCheck + 5)
      t.timer.unref()
    }
  }

  /** Whether some peer holding or making the entry's inputs can start it without a wait (or it reads none). */
  private homeFree (s: RequestState, e: Entry, model: QueueModel): boolean {
    e.bytes ??= inputBytes(s, e.rec.step, e.rec.index, this.sched.history)
    const readyAt = e.readyAt ??= model.readyAt(s, e.rec)
    if (e.bytes.producers.size === 0) return true
    const ms = e.ms ??= model.msOf(s, e.rec.step)
    for (const p of e.bytes.producers) if (model.waitOn(p, readyAt, ms) <= 0) return true
    return false
  }

  /** Whether `best` holds or makes some of the entry's inputs (or it reads none) and can start it without a wait. */
  private startsHome (s: RequestState, e: Entry, best: string, model: QueueModel): boolean {
    const producers = (e.bytes as InputBytes).producers
    return (producers.size === 0 || producers.has(best)) && model.waitOn(best, e.readyAt as number, e.ms ??= model.msOf(s, e.rec.step)) <= 0
  }

  /** The cheapest peer for an entry now (placement.ts), its inputs and readiness read once per walk. */
  private choose (t: Tracked, s: RequestState, e: Entry, model: QueueModel, live: string[]): string | undefined {
    const { history, init } = this.sched
    e.bytes ??= inputBytes(s, e.rec.step, e.rec.index, history)
    const readyAt = e.readyAt ??= model.readyAt(s, e.rec)
    // a single-step module is warm only where the request's warm plan put its step: elsewhere it starts cold
    const warmAt = t.warmPlan?.get(e.rec.step)
    const ms = e.ms ??= model.msOf(s, e.rec.step)
    const cold = warmAt !== undefined ? history.expectedColdMs(s.started.workflow) ?? DEFAULT_COLD_MS : 0
    const q: PlacementQuery = {
      key: e.rec.gid,
      candidates: live,
      bytesAt: e.bytes.bytesAt,
      totalBytes: e.bytes.total,
      producers: e.bytes.producers,
      queueMs: p => model.waitOn(p, readyAt, ms),
      spread: p => model.count(p) / Math.max(1, model.slots(p)),
      bytesPerMs: init.linkMiBps * 1048.576,
      hopMs: history.hopMs(init.hopMs),
      ...(warmAt !== undefined ? { coldMs: (p: string) => p === warmAt ? 0 : cold } : {})
    }
    return bestPeer(q, e.rec.excluded)
  }

  /**
   * Places an entry on `best`: in the model (before a claim enters the load book, so it counts once), and for
   * this peer's own entries, the claim (or the expectation that `best` claims). Answers when to look again.
   */
  private commit (t: Tracked, s: RequestState, e: Entry, best: string, model: QueueModel, now: number): number {
    const { self, init } = this.sched
    const membership = this.sched.c.membership
    const { rec, placer } = e
    model.add(best, { readyAt: e.readyAt as number, ms: e.ms ??= model.msOf(s, rec.step) })
    if (!e.mine) return Infinity
    const producers = (e.bytes as InputBytes).producers
    if (placer === self) {
      const incarnation = best === self ? membership.incarnation : membership.incarnationOf(best)
      if (incarnation !== undefined) {
        this.out.claim(t, s, rec, best, incarnation, best === self && this.out.mayStayQuiet(rec, producers))
        if (this.out.full) this.out.flush(s)
        return Infinity
      }
    }
    if (best === self) {
      this.out.claim(t, s, rec, self, membership.incarnation, this.out.mayStayQuiet(rec, producers))
      if (this.out.full) this.out.flush(s)
      return Infinity
    }
    if (rec.expect?.peer !== best) rec.expect = { peer: best, since: now }
    const due = rec.expect.since + init.claimTimeoutMs
    if (due > now) return due - now
    // the chosen peer never claimed: pass it over for this instance and place again at once
    ;(rec.excluded ??= new Set()).add(best)
    rec.expect = undefined
    return 0
  }
}

/** What a cold start costs before one was seen for the workflow, ms: a process instance's boot on a busy host. */
export const DEFAULT_COLD_MS = 100

/** An unplaced instance in a walk: this peer's to place (`mine`), or another placer's, placed in the model only. */
interface Entry { rec: InstanceRecord, placer: string | undefined, mine: boolean, bytes?: InputBytes, readyAt?: number, ms?: number }
