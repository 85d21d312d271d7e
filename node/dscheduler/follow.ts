import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import type { InstanceRunner } from './runner.ts'
import type { Tracked } from './tracked.ts'

/** DFLOW_FOLLOW=0 turns the hand-off off (A/B runs of one build). */
const FOLLOW_OFF = process.env.DFLOW_FOLLOW === '0'

/**
 * Same-peer hand-off. A consumer this peer won, whose every missing input is a whole value output of one step
 * running here in the same module, is queued behind that producer in the producer's instance: it starts there the
 * moment the producer returns, with the producer's outputs as its inputs, and the peer's main thread (events,
 * store, claims) is off the critical path of the hand-off. The events still go out as before: the producer's
 * outputs and step-done, then the consumer's. Dataflow only (control mode stays the classic engine), plain
 * steps only (no foreach, condition or eager trigger). When the input turns up another way first (the producer
 * posted it mid-run), the link is taken back and the consumer fires as usual, on another instance at once.
 */
export function followLink (t: Tracked, s: RequestState, rec: InstanceRecord): { producer: InstanceRunner, from: Record<string, string> } | undefined {
  if (s.started.mode !== 'dataflow' || rec.index !== null || FOLLOW_OFF) return undefined
  const def = s.step(rec.step)
  if (def.foreach !== undefined || def.when !== undefined || def.trigger === 'eager' || s.skipped(rec.step) !== 'no') return undefined
  let producer: string | undefined
  const from: Record<string, string> = {}
  for (const [name, src] of Object.entries(def.in)) {
    if (s.resolve(src, rec.step, null).state !== 'pending') continue
    if (src.kind !== 'step' || (producer !== undefined && producer !== src.step)) return undefined
    producer = src.step
    from[name] = src.output
  }
  if (producer === undefined) return undefined
  const runner = t.runners.get(instanceKey(producer, null))
  if (runner === undefined || !runner.canLead) return undefined
  return { producer: runner, from }
}

/** Queues the instance behind its producer if it can follow it (followLink); its runner must exist and not have fired. */
export function tryFollow (t: Tracked, s: RequestState, rec: InstanceRecord): void {
  if (rec.runnable === true) return
  const runner = t.runners.get(instanceKey(rec.step, rec.index))
  if (runner === undefined || runner.fired) return
  const link = followLink(t, s, rec)
  if (link !== undefined) runner.follow(link.producer, link.from)
}

/** A function started here: the consumers this peer won may follow it. */
export function followersOf (t: Tracked, s: RequestState, producer: InstanceRunner): void {
  if (producer.index !== null) return
  for (const name of s.readersOfStep(producer.stepName)) {
    const rec = s.instances.get(instanceKey(name, null))
    if (rec !== undefined) tryFollow(t, s, rec)
  }
}
