import { claimable, winnerOf } from './claims.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import { InstanceRunner } from './runner.ts'
import { adoptionEvents } from './adopt.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'
import type { LoadedWorkflow } from './types.ts'
import { ClaimOut } from './claim-out.ts'
import { tryFollow } from './follow.ts'
import { Placer } from './placer.ts'

/**
 * Per touched instance: who wins it, whether it can run, and whether this peer fires it. Then placement
 * (placer.ts) claims what nobody won yet, and its claims go out together (claim-out.ts).
 */
export class Dispatcher {
  readonly out: ClaimOut
  readonly placer: Placer

  constructor (private readonly sched: DScheduler) {
    this.out = new ClaimOut(sched, (t, s, rec) => { this.examine(t, s, rec) })
    this.placer = new Placer(sched, this.out)
  }

  /** Places the claimable instances of a request nobody won yet (placer.ts). */
  place (t: Tracked, s: RequestState): void { this.placer.place(t, s) }

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
    // when it became runnable: the queue model counts it as work ready since then, and its consumers' inputs
    // as expected one step time later
    if (rec.runnable !== wasRunnable) rec.runnableAt = rec.runnable ? Date.now() : undefined
    // consumers are claimed one level ahead of producers that run: this one starting may make them claimable
    if (rec.runnable && !wasRunnable && s.started.mode === 'dataflow') for (const name of s.readersOfStep(rec.step)) this.sched.applier.touchStep(t, s, name)
    // a finished request's instances hold no slot (a claim heard after the finish would keep its whole state alive)
    if (load.set(rec.gid, t.finishing === true ? undefined : rec.winner?.peer, { rec, s })) this.loadChanged()
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
        // (one queued behind its producer counts too: if the link does not hold it wants an instance of its own)
        for (const r of t.runners.values()) if ((!r.fired || r.linked) && !r.finished && r.spec.memoryMb === memoryMb && r.spec.code.cid === code.cid) waiting++
        this.sched.prewarmer.claimed(s, runner.spec, waiting)
      }
    }
    if (runner.fired) {
      // queued behind its producer, but its inputs exist already (posted mid-run): it need not wait for the return
      if (rec.runnable === true && runner.linked) runner.unlink()
      return
    }
    if (s.skipped(rec.step) !== 'no') return
    if (rec.runnable === true) runner.readyAt ??= Date.now()
    if (rec.runnable === true || (s.step(rec.step).trigger === 'eager' && s.started.mode === 'dataflow')) runner.fire()
    else tryFollow(t, s, rec)
  }

  /** A peer's load changed: requests with instances waiting for placement look again. */
  private loadChanged (): void {
    for (const [id, t] of this.sched.requests) if (t.unplaced.size > 0 && t.finishing !== true) this.sched.pump(id)
  }
}
