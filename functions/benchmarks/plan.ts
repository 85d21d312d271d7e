/**
 * Maps the FaaSFlow facts (facts.json) to our workflow model: one synthetic step per reference function.
 * Shared by generate.ts (writes the files) and index.ts (critical paths), so both see the same graph.
 *
 * Mapping rules (see README.md for the why):
 * - every reference function is one step (virtual switch nodes and END included: the reference counts their 1 s
 *   runtime, e.g. illgal_recognizer's 28.8 s critical path); names are lower-cased, [^a-z0-9_] -> '_'.
 * - an input produced by another function reads that function's output; a `next` edge that carries no named
 *   parameter reads the producer's largest output (the reference moves that data through its storage by key);
 *   a virtual producer has only a `branch` output, so that is read.
 * - workflow inputs are not modelled as data: every step reads `inputs.seed` instead (salt of its bytes).
 * - `next: foreach`: the producer's largest non-keys output becomes a stream of `splitRatio ?? 3` elements of the
 *   stated size each; the consumer runs `foreach` over it with that parameter = $item.
 * - `next: switch`: the virtual step posts a constant `branch` output naming the chosen node (BRANCHES below);
 *   each target gets `when: { ref: <virtual>.branch, equals: <its name> }`.
 * - a step targeted by two switches (illgal_recognizer's mosaic) keeps the later switch's condition; the earlier
 *   switch's edge is routed into the later switch through `oneOf`, so either path reaches it.
 */
import type { FunctionFacts, WorkflowFacts } from './facts.ts'

/** The switch decisions: workflow -> virtual step -> chosen target. Chosen so the reference's stated path runs. */
export const BRANCHES: Record<string, Record<string, string>> = {
  // INPUT.split holds: upload -> split -> foreach transcode -> merge (the DataFlower video flow)
  video: { virtual1: 'split' },
  // default at virtual1 (extract), illegal at virtual2 (mosaic): the 28.8 s critical path of the README
  illgal_recognizer: { virtual1: 'extract', virtual2: 'mosaic' }
}

export const DEFAULT_FOREACH_WIDTH = 3

export interface Factors { timeScale: number, sizeScale: number, initMs: number, postAt: number }

export type PlanSource = string | { oneOf: string[] }

export interface PlanStep {
  name: string
  runtimeMs: number
  in: Record<string, PlanSource>
  /** value outputs: name -> bytes */
  outputs: Record<string, number>
  streams: Record<string, { count: number, size: number }>
  constants: Record<string, string | boolean>
  foreach?: string
  when?: { ref: string, equals: string }
  /** steps this one waits for */
  after: string[]
  /** false when a switch skips it under BRANCHES */
  runs: boolean
  /** free text kept as the step's `description` (an imported task's original name) */
  description?: string
  /** bytes the step makes itself before its work (an imported trace's stage-in files) */
  stageInBytes?: number
}

export interface Plan {
  name: string
  workflowName: string
  steps: PlanStep[]
  outputs: Record<string, PlanSource>
  /** the workflow's `description` (default: the FaaSFlow one) */
  description?: string
  /** what the generated files' header says they come from (default: the FaaSFlow facts) */
  source?: string
}

export function stepName (ref: string): string {
  const s = ref.toLowerCase().replace(/[^a-z0-9_]+/g, '_')
  return /^[a-z]/.test(s) ? s : `s_${s}`
}

/** File-like reference names ("37a45a81-bebe-...-f44c9d337513.dat") become short identifiers ("f37a45a81_dat"). */
export function outputName (ref: string): string {
  const short = ref.replace(/^([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i, '$1')
  const s = short.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '')
  return /^[a-z]/.test(s) ? s : `f${s}`
}

export function scaleSize (bytes: number, sizeScale: number): number {
  // never below 8 bytes (or the original, if smaller): flags and keys stay what they are
  return Math.max(Math.min(bytes, 8), Math.round(bytes * sizeScale))
}

export function scaleTime (seconds: number, timeScale: number): number {
  return Math.round(seconds * 1000 * timeScale)
}

function largest (f: FunctionFacts, skipKeys: boolean): string | undefined {
  const outs = f.outputs.filter(o => !skipKeys || !o.keys)
  return outs.length === 0 ? undefined : outs.reduce((a, b) => (b.size > a.size ? b : a)).name
}

export function buildPlan (w: WorkflowFacts, f: Factors): Plan {
  const byName = new Map(w.functions.map(fn => [fn.name, fn]))
  const branches = BRANCHES[w.name] ?? {}
  const steps = new Map<string, PlanStep>()
  for (const fn of w.functions) {
    const outputs: Record<string, number> = {}
    const streams: Record<string, { count: number, size: number }> = {}
    const constants: Record<string, string | boolean> = {}
    if (fn.next.type === 'foreach') {
      const s = largest(fn, true)
      if (s == null) throw new Error(`${w.name}.${fn.name}: foreach without a data output`)
      const width = byName.get(fn.next.nodes[0])?.splitRatio ?? DEFAULT_FOREACH_WIDTH
      const o = fn.outputs.find(x => x.name === s)
      streams[outputName(s)] = { count: width, size: scaleSize(o?.size ?? 0, f.sizeScale) }
    }
    for (const o of fn.outputs) if (streams[outputName(o.name)] == null) outputs[outputName(o.name)] = scaleSize(o.size, f.sizeScale)
    if (fn.next.type === 'switch') {
      const choice = branches[fn.name]
      if (choice == null || !fn.next.nodes.includes(choice)) throw new Error(`${w.name}.${fn.name}: no branch chosen among ${fn.next.nodes.join(', ')}`)
      constants.branch = stepName(choice)
    }
    if (Object.keys(outputs).length + Object.keys(streams).length + Object.keys(constants).length === 0) constants.done = true
    steps.set(fn.name, {
      name: stepName(fn.name), runtimeMs: scaleTime(fn.runtimeS, f.timeScale), in: { seed: 'inputs.seed' },
      outputs, streams, constants, after: [], runs: true
    })
  }
  const ref = (producer: string, out: string): string => `${stepName(producer)}.${outputName(out)}`
  const step = (n: string): PlanStep => {
    const s = steps.get(n)
    if (s == null) throw new Error(`${w.name}: unknown function ${n}`)
    return s
  }

  // switch targets, per target the switches (in file order) that lead to it
  const switchesOf = new Map<string, string[]>()
  for (const fn of w.functions) {
    if (fn.next.type !== 'switch') continue
    for (const t of fn.next.nodes) switchesOf.set(t, [...(switchesOf.get(t) ?? []), fn.name])
  }
  const rerouted = new Map<string, string>() // later switch -> earlier switch routed into it
  for (const [target, sw] of switchesOf) {
    if (sw.length > 2) throw new Error(`${w.name}.${target}: more than two switches lead to it`)
    if (sw.length === 2) rerouted.set(sw[1], sw[0])
    const last = sw[sw.length - 1]
    step(target).when = { ref: `${stepName(last)}.branch`, equals: stepName(target) }
  }

  for (const fn of w.functions) {
    const s = step(fn.name)
    const preds = new Set<string>()
    for (const i of fn.inputs) {
      if (i.from == null) continue
      const p = byName.get(i.from)
      if (p?.outputs.some(o => o.name === i.output) !== true) continue
      preds.add(i.from)
      s.in[outputName(i.param)] = ref(i.from, i.output)
    }
    for (const p of w.functions) if (p.next.nodes.includes(fn.name)) preds.add(p.name)
    for (const pn of preds) {
      const p = byName.get(pn) as FunctionFacts
      const sw = switchesOf.get(fn.name)
      if (sw != null && sw.length === 2 && pn === sw[0]) continue // routed through the later switch
      if (p.next.type === 'foreach' && p.next.nodes.includes(fn.name)) {
        const stream = Object.keys(step(pn).streams)[0]
        s.foreach = `${stepName(pn)}.${stream}`
        for (const [k, v] of Object.entries(s.in)) if (v === s.foreach || v === `${stepName(pn)}.${stream}`) delete s.in[k]
        s.in.item = '$item'
      } else if (!fn.inputs.some(i => i.from === pn)) {
        const out = p.next.type === 'switch' ? 'branch' : Object.keys(step(pn).constants).includes('done') ? 'done' : largest(p, false)
        if (out == null) continue
        s.in[`${stepName(pn)}_${out === 'branch' || out === 'done' ? out : outputName(out)}`] =
          out === 'branch' || out === 'done' ? `${stepName(pn)}.${out}` : ref(pn, out)
      }
      s.after.push(stepName(pn))
    }
    const earlier = rerouted.get(fn.name)
    if (earlier != null) {
      const entries = Object.entries(s.in).filter(([k]) => k !== 'seed')
      if (entries.length !== 1) throw new Error(`${w.name}.${fn.name}: a rerouted switch needs exactly one data input`)
      const [k, v] = entries[0]
      s.in[k] = { oneOf: [v as string, `${stepName(earlier)}.branch`] }
      s.after.push(stepName(earlier))
    }
  }

  // which steps run under BRANCHES: a false `when`, or a needed input from a skipped step, skips a step
  const list = w.functions.map(fn => step(fn.name))
  const byStep = new Map(list.map(s => [s.name, s]))
  for (let changed = true; changed;) {
    changed = false
    for (const s of list) {
      if (!s.runs) continue
      const refs = Object.values(s.in).map(v => (typeof v === 'string' ? [v] : v.oneOf))
      const skipped = (r: string): boolean => byStep.get(r.split('.')[0])?.runs === false
      let runs = refs.every(alts => alts.some(r => !skipped(r))) && (s.foreach == null || !skipped(s.foreach))
      if (s.when != null) {
        const sw = byStep.get(s.when.ref.split('.')[0])
        runs = runs && sw?.runs === true && sw.constants.branch === s.when.equals
      }
      if (!runs) { s.runs = false; changed = true }
    }
  }

  // workflow outputs: the smallest output of every sink (a step nothing reads); with switches the sinks are
  // alternatives, so there is one `result` that takes whichever ran
  const read = new Set(list.flatMap(s => s.after))
  const sinks = list.filter(s => !read.has(s.name)).map(s => {
    const sizes = Object.entries(s.outputs).sort((a, b) => a[1] - b[1])
    const out = sizes[0]?.[0] ?? Object.keys(s.constants)[0] ?? Object.keys(s.streams)[0]
    return { key: `${s.name}_${out}`, ref: `${s.name}.${out}` }
  })
  const outputs: Record<string, PlanSource> = {}
  if (switchesOf.size > 0) outputs.result = { oneOf: sinks.map(s => s.ref) }
  else for (const s of sinks) outputs[s.key] = s.ref
  return { name: w.name, workflowName: w.name.replace(/_/g, '-'), steps: list, outputs }
}

/** Longest path over the steps that run, in scaled ms (a foreach counts one instance: they run side by side). */
export function longestPathMs (plan: Plan): number {
  const byName = new Map(plan.steps.map(s => [s.name, s]))
  const memo = new Map<string, number>()
  const finish = (n: string): number => {
    const known = memo.get(n)
    if (known != null) return known
    const s = byName.get(n) as PlanStep
    const before = Math.max(0, ...s.after.filter(p => byName.get(p)?.runs === true).map(finish))
    const t = before + s.runtimeMs
    memo.set(n, t)
    return t
  }
  return Math.max(0, ...plan.steps.filter(s => s.runs).map(s => finish(s.name)))
}
