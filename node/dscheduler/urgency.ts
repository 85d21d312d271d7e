import type { RequestState } from './request-state.ts'

/**
 * When each step of a request should start, at the latest, for the request to end after its critical path:
 * ms after the request's start. That is the critical path minus the step's upward rank (its own expected run time
 * plus the longest expected path of steps reading it, down to a sink), the order list schedulers such as HEFT use.
 *
 * A peer's pool hands free slots to waiting invocations earliest `startBy` first (InvokeOptions.startBy is the
 * request's start here plus this offset). Within a request that is the step with the longest way still ahead
 * first, where a FIFO would let a side branch take the slot a longer path needs; across requests an older
 * request's steps come first once their latest start is reached, so a stream of new requests cannot starve an
 * old one's tail. (On the FaaSFlow DAGs its effect was within noise: their competing siblings have equal ranks;
 * epigenomics' lane waits were placement's, see queue-model.ts insertionCost.)
 */
export function latestStarts (s: RequestState, msOf: (step: string) => number): Map<string, number> {
  const rank = new Map<string, number>()
  const visiting = new Set<string>()
  const rankOf = (step: string): number => {
    const known = rank.get(step)
    if (known !== undefined) return known
    // workflows are acyclic (the loader checks); a cycle here must not recurse forever
    if (visiting.has(step)) return 0
    visiting.add(step)
    let below = 0
    for (const reader of s.readersOfStep(step)) below = Math.max(below, rankOf(reader))
    visiting.delete(step)
    const r = Math.max(0, msOf(step)) + below
    rank.set(step, r)
    return r
  }
  let critical = 0
  for (const step of Object.keys(s.workflow.steps)) critical = Math.max(critical, rankOf(step))
  const out = new Map<string, number>()
  for (const [step, r] of rank) out.set(step, critical - r)
  return out
}
