/**
 * Where to warm a module that only one step runs (one function per module, as a FaaS platform runs one function
 * per container). Such a module's instance serves only its step, so warming it on every peer that might run the
 * step would start it once per peer; and a dataflow claim comes only one level ahead of the step, too late to hide
 * a start cost that is longer than a step. So at request start every peer computes the same plan, a peer for each
 * such step, warms the modules of the steps planned on itself, and placement prices a peer other than the planned
 * one with the cold start it would meet there (placement.ts `coldMs`): steps follow their warm instances, as the
 * paper's dataflow pre-warms each function's container where the workflow's partition put it.
 *
 * The plan follows the data as placement does: a root goes to the request's start peer, a step to the peer its
 * first producer was planned on, as long as that peer has a free slot at the step's depth in the DAG (steps at
 * one depth run about together); otherwise to the live peer with the fewest steps planned at that depth (ties by
 * rendezvous score, the same on every peer). Modules shared by several steps, and foreach steps (their instance
 * count is known only at run time), are not planned: prewarm.ts warms them by counts per peer role.
 */
import type { StepDef } from '../workflow/types.ts'
import { rendezvousScore } from './placement.ts'
import { depths, moduleKey } from './prewarm.ts'
import type { LoadedWorkflow } from './types.ts'

/** The first step a step reads (its placer's producer, as placer.ts names it), or undefined for a root. */
function firstProducer (def: StepDef): string | undefined {
  const sources = def.foreach !== undefined ? [def.foreach, ...Object.values(def.in)] : Object.values(def.in)
  for (const src of sources) for (const ref of src.kind === 'oneOf' ? src.refs : [src]) if (ref.kind === 'step') return ref.step
  return undefined
}

/** The steps whose module no other step runs and that run once per request (not foreach): the ones planned. */
export function singleStepModules (loaded: LoadedWorkflow): Set<string> {
  const steps = new Map<string, string[]>()
  for (const [name, def] of Object.entries(loaded.workflow.steps)) {
    const key = moduleKey(loaded.functionOf(name).code.cid, def.memoryMb)
    const names = steps.get(key)
    if (names === undefined) steps.set(key, [name])
    else names.push(name)
  }
  const out = new Set<string>()
  for (const names of steps.values()) if (names.length === 1 && loaded.workflow.steps[names[0]].foreach === undefined) out.add(names[0])
  return out
}

/**
 * The plan: step -> peer, for the single-step modules of the workflow (empty when it has none). `live` is every
 * live peer (self included), `slots` a peer's slot count; the same inputs give the same plan on every peer.
 */
export function warmPlan (loaded: LoadedWorkflow, request: string, startPeer: string, live: readonly string[], slots: (peer: string) => number): Map<string, string> {
  const planned = singleStepModules(loaded)
  const out = new Map<string, string>()
  if (planned.size === 0 || live.length === 0) return out
  const peers = [...new Set(live)].sort()
  const depth = depths(loaded.workflow)
  // by depth; within a depth the stable sort keeps workflow order (runs at every request start on every peer)
  const steps = Object.keys(loaded.workflow.steps).sort((a, b) => (depth.get(a) ?? 0) - (depth.get(b) ?? 0))
  // every step is placed in the plan (a chain through a shared module still carries its data's peer), but only
  // the single-step modules are answered
  const at = new Map<string, string>()
  const used = new Map<string, number>()
  const usedAt = (peer: string, d: number): number => used.get(`${peer}\n${d}`) ?? 0
  for (const name of steps) {
    const d = depth.get(name) ?? 0
    const producer = firstProducer(loaded.workflow.steps[name])
    const home = producer === undefined ? startPeer : at.get(producer) ?? startPeer
    let peer = home
    if (!peers.includes(home) || usedAt(home, d) >= slots(home)) {
      let best: string | undefined
      let bestUse = Infinity
      let bestScore = -1
      for (const p of peers) {
        const use = usedAt(p, d) / Math.max(1, slots(p))
        const score = rendezvousScore(p, `${request}\n${name}`)
        if (use < bestUse || (use === bestUse && score > bestScore)) { best = p; bestUse = use; bestScore = score }
      }
      peer = best as string
    }
    at.set(name, peer)
    used.set(`${peer}\n${d}`, usedAt(peer, d) + 1)
    if (planned.has(name)) out.set(name, peer)
  }
  return out
}
