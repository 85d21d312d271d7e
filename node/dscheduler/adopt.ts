import type { ElementPosted, Fence, StepDone, StepFailed } from '../../protocols/events/index.ts'
import type { InstanceRecord, RequestState } from './request-state.ts'

/**
 * A peer may accept an instance's result from one claim and only later hear an earlier claim of its own, which
 * wins (a placer's assignment delayed on a loaded host while another peer, tired of waiting, claimed and ran the
 * instance). Its state is final (done or failed), so it would never run the instance, while every peer that heard
 * its claim first holds that result as coming from a losing claim and waits for the winner's: the request never
 * ends. The winner therefore vouches for the result it accepted: it re-announces it under its own winning claim
 * (the same value references, so consumers read what was already read anywhere). Peers that took the first
 * announcement ignore the second (first result per key wins); the others now have it from the winner.
 *
 * Answers the events to publish, in order (stream elements, then the done or the failure), or [] when there is
 * nothing to adopt: the result came from this very claim, or was already adopted.
 */
export function adoptionEvents (s: RequestState, rec: InstanceRecord, self: string, winner: Fence & { peer: string }): Array<ElementPosted | StepDone | StepFailed> {
  if (rec.adopted === true || winner.peer !== self) return []
  const fence = { attempt: winner.attempt, incarnation: winner.incarnation, start: s.startId }
  const base = { from: self, ts: Date.now(), request: s.id, step: rec.step, index: rec.index, ...fence }
  const done = rec.done
  if (done !== undefined) {
    if (done.from === self && done.attempt === winner.attempt && done.incarnation === winner.incarnation) return []
    rec.adopted = true
    const { values, elements } = s.outputsOf(rec.step, rec.index)
    const posted: ElementPosted[] = elements.map(e => ({ type: 'element-posted', ...base, output: e.output, element: e.element, value: e.ref }))
    const adopted: StepDone = {
      type: 'step-done',
      ...base,
      streams: done.streams,
      coldStartMs: done.coldStartMs,
      readyAt: done.readyAt,
      startAt: done.startAt,
      endAt: done.endAt,
      ...(Object.keys(values).length > 0 ? { outputs: values } : {})
    }
    return [...posted, adopted]
  }
  const by = rec.failedBy
  if (rec.failed !== undefined && by !== undefined && !(by.peer === self && by.attempt === winner.attempt && by.incarnation === winner.incarnation)) {
    rec.adopted = true
    return [{ type: 'step-failed', ...base, error: rec.failed }]
  }
  return []
}
