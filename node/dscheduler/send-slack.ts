import type { DflowEvent } from '../../protocols/events/index.ts'
import { stepRefs } from './claims.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import type { DScheduler } from './scheduler.ts'

/**
 * How long one of this peer's own runner events (step-done, output-ready, element-posted) may wait before it is
 * sent, so that it shares one gossip message with the events that follow it (GossipBus): 0 when anybody may be
 * waiting on it. Asked after the event was applied here, and asked again while it waits, as what this peer knows
 * changes. Other peers need these events to keep their view, but not at once, unless
 * - the request is ending (the submitter publishes request-done when it hears the last one), or no step reads it
 *   and this peer is not the submitter (which waits for it), or it is not this peer's winning run, or the mode is
 *   not dataflow (control places consumers when their producers returned);
 * - a step reading the output has a `when`, is a foreach (its instances appear with elements, for a placer to
 *   place), or has an instance nobody won, or one that can run now (its inputs all here), or
 * - an instance reading it won by another peer still lacks inputs whose producers all run in this round.
 * An instance won elsewhere that waits on producers with at least one more round to run before them (more
 * pending producers on a peer than that peer has slots) gives half of that round's expected time (learned from
 * earlier requests) as slack; instances this peer won give unbounded slack (they fire here, from the local
 * event). A chain kept on one peer thus folds several step-done events into one message, and a fan's early
 * waves do; the last events before a consumer elsewhere can run never wait.
 */
export function sendSlack (sched: DScheduler, ev: DflowEvent, memo?: SlackMemo): number {
  if (ev.type !== 'step-done' && ev.type !== 'output-ready' && ev.type !== 'element-posted') return 0
  if (ev.from !== sched.self) return 0
  const t = sched.requests.get(ev.request)
  const s = t?.state
  if (t === undefined || s === undefined || t.finishing === true || t.done !== undefined || s.started.mode !== 'dataflow') return 0
  const rec = s.instances.get(instanceKey(ev.step, ev.index))
  const w = rec?.winner
  if (rec === undefined || w === undefined || w.peer !== sched.self || w.attempt !== ev.attempt || w.incarnation !== ev.incarnation) return 0
  if (!s.surelyRunning() && s.outcome().status !== 'running') return 0
  // a step no step reads (the workflow's outputs come from these) is waited on by the submitter, which finishes
  // the request once it heard the last one: two such steps ending on two peers each held their done for the
  // other's, the whole 50 ms cap (cycles: 60-70 ms between its last step's end and request-done, 5-20 in control)
  const readers = s.readersOfStep(ev.step)
  if (readers.length === 0 && s.started.submitter !== sched.self) return 0
  let slack = Infinity
  for (const name of readers) {
    const def = s.step(name)
    if (def.when !== undefined || def.foreach !== undefined) return 0
    if (s.skipped(name) === 'yes') continue
    for (const c of s.instancesOf(name)) {
      if (c.done !== undefined || c.failed !== undefined) continue
      if (c.winner === undefined) return 0
      if (c.winner.peer === sched.self) continue
      if (c.runnable === true) return 0
      let wait = memo?.get(c)
      if (wait === undefined) {
        wait = untilRunnableMs(sched, s, c)
        memo?.set(c, wait)
      }
      slack = Math.min(slack, wait)
      if (slack <= 0) return 0
    }
  }
  return slack
}

/**
 * What one send check already worked out, per consumer instance: the check asks for every waiting event in
 * turn, nothing changes between those calls, and the events of a fan's wave all wake the same join, whose
 * untilRunnableMs walks every input (100 for a fan of 100). Profiled on the fan: sendSlack was 5% of peer CPU.
 */
export type SlackMemo = Map<object, number>

/**
 * A floor on how long `c` (won elsewhere) still waits for its inputs: 0 unless some peer runs more of its pending
 * producers than it has slots (one more round to go), then half the producers' expected time (0 when unknown).
 */
function untilRunnableMs (sched: DScheduler, s: RequestState, c: InstanceRecord): number {
  const pending = new Map<string, number>()
  let stepMs = Infinity
  for (const ref of stepRefs(s, c.step)) {
    if (ref.kind !== 'step' || s.resolveRef(ref, c.step, c.index).state !== 'pending') continue
    const ms = sched.history.expectedMs(s.started.workflow, ref.step)
    if (ms === undefined) return 0
    stepMs = Math.min(stepMs, ms)
    const producers = s.step(ref.step).foreach === undefined ? [s.instances.get(instanceKey(ref.step, null))] : s.instancesOf(ref.step)
    for (const p of producers) {
      if (p === undefined) return 0
      if (p.done !== undefined || s.hasOutput(ref.step, p.index, ref.output)) continue
      const peer = p.winner?.peer
      if (peer === undefined) return 0
      pending.set(peer, (pending.get(peer) ?? 0) + 1)
    }
  }
  let rounds = 0
  for (const [peer, n] of pending) rounds = Math.max(rounds, Math.ceil(n / Math.max(1, sched.load.slots(peer))))
  if (rounds < 2 || stepMs === Infinity) return 0
  return (rounds - 1) * stepMs / 2
}
