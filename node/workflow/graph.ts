import type { InputRef, Ref, Source, StepDef, StepRef, Workflow } from './types.ts'

function collect (src: Source, stepRefs: StepRef[], inputRefs: InputRef[]): void {
  if (src.kind === 'oneOf') { for (const r of src.refs) collect(r, stepRefs, inputRefs); return }
  if (src.kind === 'step') stepRefs.push(src)
  else if (src.kind === 'input') inputRefs.push(src)
}

/** Everything a step reads: its `in` sources (oneOf members included), its `foreach` and its `when` ref. */
export function stepDependencies (step: StepDef): { stepRefs: StepRef[], inputRefs: InputRef[] } {
  const stepRefs: StepRef[] = []
  const inputRefs: InputRef[] = []
  for (const src of Object.values(step.in)) collect(src, stepRefs, inputRefs)
  if (step.foreach != null) collect(step.foreach, stepRefs, inputRefs)
  if (step.when != null) collect(step.when.ref, stepRefs, inputRefs)
  return { stepRefs, inputRefs }
}

/** The distinct steps `stepName` reads from, in first-read order. */
export function predecessors (workflow: Workflow, stepName: string): string[] {
  const step = workflow.steps[stepName]
  if (step == null) throw new Error(`unknown step "${stepName}"`)
  return [...new Set(stepDependencies(step).stepRefs.map(r => r.step))]
}

/** The distinct steps that read from `stepName`, in file order. */
export function successors (workflow: Workflow, stepName: string): string[] {
  return Object.keys(workflow.steps).filter(s => predecessors(workflow, s).includes(stepName))
}

/**
 * Cycles in the step graph, each as the list of steps with the first repeated at the end
 * (`['a', 'b', 'a']`). Refs to unknown steps are ignored here (they are reported elsewhere).
 */
export function findCycles (workflow: Workflow): string[][] {
  const names = Object.keys(workflow.steps)
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const cycles: string[][] = []
  const seen = new Set<string>()
  const visit = (n: string): void => {
    state.set(n, 'open')
    stack.push(n)
    for (const p of predecessors(workflow, n)) {
      if (workflow.steps[p] == null) continue
      const s = state.get(p)
      if (s === 'open') {
        // stack holds readers after what they read; a cycle reads in the reverse direction of the stack
        const loop = stack.slice(stack.indexOf(p)).reverse()
        const start = loop.reduce((best, x, i) => names.indexOf(x) < names.indexOf(loop[best]) ? i : best, 0)
        const rotated = [...loop.slice(start), ...loop.slice(0, start)]
        const key = rotated.join('\0')
        if (!seen.has(key)) { seen.add(key); cycles.push([...rotated, rotated[0]]) }
      } else if (s == null) {
        visit(p)
      }
    }
    stack.pop()
    state.set(n, 'done')
  }
  for (const n of names) if (!state.has(n)) visit(n)
  return cycles
}

/** Steps in an order where every step comes after the steps it reads (ties keep file order). Throws on a cycle. */
export function topoOrder (workflow: Workflow): string[] {
  const names = Object.keys(workflow.steps)
  const preds = new Map(names.map(n => [n, predecessors(workflow, n).filter(p => workflow.steps[p] != null)]))
  const done = new Set<string>()
  const order: string[] = []
  while (order.length < names.length) {
    const next = names.find(n => !done.has(n) && preds.get(n)!.every(p => done.has(p)))
    if (next == null) throw new Error(`workflow ${workflow.name} has a cycle: ${findCycles(workflow).map(c => c.join(' -> ')).join('; ')}`)
    done.add(next)
    order.push(next)
  }
  return order
}

/**
 * The longest chain of steps by summed runtime (the lower bound of a request's makespan with unlimited
 * parallelism and free data movement). `runtimeMsOf` gives each step's (estimated) runtime.
 */
export function criticalPath (workflow: Workflow, runtimeMsOf: (step: StepDef) => number): { ms: number, path: string[] } {
  const finish = new Map<string, { ms: number, via?: string }>()
  for (const name of topoOrder(workflow)) {
    let best: { ms: number, via?: string } = { ms: 0 }
    for (const p of predecessors(workflow, name)) {
      const f = finish.get(p)
      if (f != null && f.ms > best.ms) best = { ms: f.ms, via: p }
    }
    finish.set(name, { ms: best.ms + runtimeMsOf(workflow.steps[name]), via: best.via })
  }
  let end: string | undefined
  for (const [name, f] of finish) if (end == null || f.ms > finish.get(end)!.ms) end = name
  const path: string[] = []
  for (let n = end; n != null; n = finish.get(n)?.via) path.unshift(n)
  return { ms: end == null ? 0 : finish.get(end)!.ms, path }
}

/** True when a ref can only be used inside a foreach step. */
export function isItemRef (ref: Ref): boolean {
  return ref.kind === 'item' || ref.kind === 'index'
}
