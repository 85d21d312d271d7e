/**
 * Pre-warming (dataflow): every function instance a request will need is started at request start, so a
 * cold start overlaps the upstream steps instead of adding to the critical path. Which peer runs a step is
 * settled only once its first data exists, so every peer warms what it will probably need: the number of
 * instances of each module that earlier requests of the workflow ran at once on a peer in the same role (the
 * request's start peer, which places the root steps, or any other peer, counted as the busiest of them), or,
 * for a workflow not seen yet, the module's width in the DAG. The instances are held for the request (the pool
 * does not retire them for idleness until the request ends here), so a step that fires seconds later still
 * finds its instance warm under a short `--idle-instance`. A module that only one step runs (one function per
 * module) is warmed on one peer only, the one the request's warm plan names for its step (warm-plan.ts), and
 * placement sends the step there.
 */
import type { InstanceSpec } from '../executor/types.ts'
import type { StepDef, Workflow } from '../workflow/types.ts'
import type { ModuleConcurrency, WorkflowHistory } from './history.ts'
import type { RequestState } from './request-state.ts'
import type { FunctionPool, LoadedWorkflow } from './types.ts'
import { warmPlan } from './warm-plan.ts'

/** One module as the pool keys instances: code and heap size. */
export interface ModuleDemand {
  key: string
  spec: InstanceSpec
  /** instances of it that can run at once in the DAG (Infinity: a foreach, whose width is known only at run time) */
  width: number
}

export function moduleKey (cid: string, memoryMb: number): string {
  return `${cid}:${memoryMb}`
}

/** The step names a step reads (inputs, foreach source, `when`): its edges in the DAG. */
function reads (def: StepDef): string[] {
  const out: string[] = []
  const sources = [...Object.values(def.in), ...(def.foreach !== undefined ? [def.foreach] : [])]
  for (const src of sources) for (const ref of src.kind === 'oneOf' ? src.refs : [src]) if (ref.kind === 'step') out.push(ref.step)
  if (def.when?.ref.kind === 'step') out.push(def.when.ref.step)
  return out
}

/** Depth of every step: the longest chain of steps it reads through (roots are 0). */
export function depths (wf: Workflow): Map<string, number> {
  const depth = new Map<string, number>()
  const visit = (name: string, seen: Set<string>): number => {
    const known = depth.get(name)
    if (known !== undefined) return known
    // the validator refuses cycles; the guard only keeps a bad workflow from recursing for ever
    if (seen.has(name) || wf.steps[name] === undefined) return 0
    seen.add(name)
    let d = 0
    for (const p of reads(wf.steps[name])) d = Math.max(d, visit(p, seen) + 1)
    depth.set(name, d)
    return d
  }
  for (const name of Object.keys(wf.steps)) visit(name, new Set())
  return depth
}

/**
 * Per module: how many of its instances can run at once, as the DAG tells before any request ran. Steps at the
 * same depth can run together, and a level's consumers start while the level before still ends (or runs, when
 * outputs are posted mid-run), so the width is the largest sum of two adjacent levels; a foreach counts as
 * unbounded. A chain of one module needs 2 instances, not one per step.
 */
export function moduleWidths (loaded: LoadedWorkflow): Map<string, ModuleDemand> {
  const depth = depths(loaded.workflow)
  const perLevel = new Map<string, { spec: InstanceSpec, levels: number[] }>()
  for (const [name, def] of Object.entries(loaded.workflow.steps)) {
    const { code } = loaded.functionOf(name)
    const key = moduleKey(code.cid, def.memoryMb)
    const m = perLevel.get(key) ?? { spec: { code, memoryMb: def.memoryMb }, levels: [] }
    const d = depth.get(name) ?? 0
    m.levels[d] = (m.levels[d] ?? 0) + (def.foreach === undefined ? 1 : Infinity)
    perLevel.set(key, m)
  }
  const out = new Map<string, ModuleDemand>()
  for (const [key, { spec, levels }] of perLevel) {
    let width = 0
    for (let d = 0; d < levels.length; d++) width = Math.max(width, (levels[d] ?? 0) + (levels[d + 1] ?? 0))
    out.set(key, { key, spec, width })
  }
  return out
}

/**
 * How many instances of each module this peer warms for a request: what earlier requests ran at once on a peer
 * of this role (one more on a peer that is not the start peer), else the module's width; never more than the
 * slots (more could not run at once here). Modules in `skip` (the warm plan's) are left out.
 */
export function prewarmCounts (loaded: LoadedWorkflow, history: Pick<WorkflowHistory, 'expectedConcurrency'>, startPeer: boolean, slots: number, skip: ReadonlySet<string> = new Set()): Array<{ spec: InstanceSpec, count: number }> {
  const out: Array<{ spec: InstanceSpec, count: number }> = []
  for (const m of moduleWidths(loaded).values()) {
    if (skip.has(m.key)) continue
    const learned = history.expectedConcurrency(loaded.cid, m.key)
    // the roots are placed on the start peer alike every time; which other peer gets the most varies, and a missing
    // instance costs a whole cold start where an extra one costs a share of the CPU the others start with: one more
    const want = learned === undefined ? m.width : startPeer ? learned.start : learned.other > 0 ? learned.other + 1 : 0
    const count = Math.min(slots, want)
    if (count > 0) out.push({ spec: m.spec, count })
  }
  return out
}

/**
 * What a finished request ran at once, per module: on its start peer, and on the busiest other peer. An instance
 * is busy from the moment its step asked for it (its cold start included) to its end, on the clock of the peer
 * that ran it, so peers' clocks never mix.
 */
export function observedConcurrency (s: RequestState, loaded: LoadedWorkflow): Map<string, ModuleConcurrency> {
  const byPeer = new Map<string, Map<string, Array<[number, number]>>>()
  for (const rec of s.instances.values()) {
    const done = rec.done
    if (done === undefined) continue
    const { code } = loaded.functionOf(rec.step)
    const key = moduleKey(code.cid, s.step(rec.step).memoryMb)
    const peers = byPeer.get(key) ?? new Map<string, Array<[number, number]>>()
    const spans = peers.get(done.from) ?? []
    spans.push([done.startAt - done.coldStartMs, done.endAt])
    peers.set(done.from, spans)
    byPeer.set(key, peers)
  }
  const out = new Map<string, ModuleConcurrency>()
  for (const m of moduleWidths(loaded).keys()) {
    let start = 0
    let other = 0
    for (const [peer, spans] of byPeer.get(m) ?? []) {
      const n = maxOverlap(spans)
      if (peer === s.started.from) start = Math.max(start, n)
      else other = Math.max(other, n)
    }
    out.set(m, { start, other })
  }
  return out
}

/** The most intervals [from, to) open at one time. */
export function maxOverlap (spans: Array<[number, number]>): number {
  const edges: Array<[number, number]> = []
  for (const [from, to] of spans) edges.push([from, 1], [Math.max(from, to), -1])
  // at equal times an end comes first: a step that starts as another ends reuses its instance
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let open = 0
  let most = 0
  for (const [, d] of edges) { open += d; most = Math.max(most, open) }
  return most
}

/** The scheduler's pre-warming: warm and hold at request start, release at its end, learn from it. */
export class Prewarmer {
  constructor (private readonly pool: Pick<FunctionPool, 'prewarm' | 'release'>, private readonly history: WorkflowHistory,
    private readonly self: string, private readonly slots: number, private readonly log: (line: string, ...args: unknown[]) => void) {}

  /**
   * A dataflow request started (its workflow is loaded here): warm its modules and hold them for it. Single-step
   * modules are warmed where the warm plan puts their step (`live`: the live peers, self included, `slots` of
   * each); the plan is answered so that placement follows it.
   */
  start (s: RequestState, loaded: LoadedWorkflow, live: readonly string[] = [this.self], slotsOf: (peer: string) => number = () => this.slots): Map<string, string> {
    const plan = warmPlan(loaded, s.id, s.started.from, live, slotsOf)
    const planned = new Set<string>()
    for (const [step, peer] of plan) {
      const def = loaded.workflow.steps[step]
      const spec: InstanceSpec = { code: loaded.functionOf(step).code, memoryMb: def.memoryMb }
      planned.add(moduleKey(spec.code.cid, spec.memoryMb))
      if (peer === this.self) this.warm(s, spec, 1)
    }
    for (const { spec, count } of prewarmCounts(loaded, this.history, s.started.from === this.self, this.slots, planned)) this.warm(s, spec, count)
    return plan
  }

  private warm (s: RequestState, spec: InstanceSpec, count: number): void {
    this.pool.prewarm(spec, count, s.id).catch(err => { this.log('prewarm for %s failed: %s', s.id, (err as Error).message) })
  }

  /**
   * This peer claimed an instance: `waiting` of the request's instances here (this one included) will want an
   * instance of its module when they fire, so that many are warm or warming, held for the request. A peer that
   * gets more than earlier requests taught starts the extra instance now, a level before its step can fire.
   */
  claimed (s: RequestState, spec: InstanceSpec, waiting = 1): void {
    this.warm(s, spec, Math.min(this.slots, Math.max(1, waiting)))
  }

  /**
   * The request ended here: what it held may be retired again, and a dataflow request that succeeded teaches how
   * many instances a peer ran at once (every peer learns alike from the same events).
   */
  end (s: RequestState, loaded: LoadedWorkflow | undefined, ok: boolean): void {
    this.pool.release?.(s.id)
    if (!ok || loaded === undefined || s.started.mode !== 'dataflow') return
    for (const [key, c] of observedConcurrency(s, loaded)) this.history.recordConcurrency(loaded.cid, key, c)
  }
}
