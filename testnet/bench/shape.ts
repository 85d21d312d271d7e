/**
 * A workflow's shape as a central engine sees it: tasks with a runtime, the bytes they return and the tasks they
 * wait for. The Dask yardstick runs these; the lower bound of a bench row is computed from them.
 */
import type { Plan } from '../../functions/benchmarks/plan.ts'

export interface ShapeTask {
  name: string
  runtimeMs: number
  /** bytes the task returns (the sum of its outputs), moved to the tasks that wait for it */
  outputBytes: number
  /** tasks it waits for */
  after: string[]
  /** a foreach instance: element `index` of the `count` its foreach producer `task` streams */
  element?: { task: string, index: number, count: number }
}

export interface DagShape { name: string, tasks: ShapeTask[] }

/**
 * The tasks of a plan that run (skipped branches left out); a foreach step becomes one task per element of the
 * stream it reads, and readers of a foreach step wait for all of them.
 */
export function shapeFromPlan (plan: Plan): DagShape {
  const running = plan.steps.filter(s => s.runs)
  const instancesOf = new Map<string, string[]>()
  const width = (stream: string): number => {
    const [producer, out] = stream.split('.')
    return plan.steps.find(s => s.name === producer)?.streams[out]?.count ?? 1
  }
  for (const s of running) {
    const n = s.foreach === undefined ? 1 : width(s.foreach)
    instancesOf.set(s.name, n === 1 && s.foreach === undefined ? [s.name] : Array.from({ length: n }, (_, i) => `${s.name}[${i}]`))
  }
  const tasks: ShapeTask[] = []
  for (const s of running) {
    const after = [...new Set(s.after)].flatMap(p => instancesOf.get(p) ?? [])
    const bytes = Object.values(s.outputs).reduce((a, b) => a + b, 0) + Object.values(s.streams).reduce((a, b) => a + b.count * b.size, 0)
    const producer = s.foreach === undefined ? undefined : instancesOf.get(s.foreach.split('.')[0])
    instancesOf.get(s.name)!.forEach((name, index, all) => {
      const element = producer?.length === 1 && all.length > 1 ? { task: producer[0], index, count: all.length } : undefined
      tasks.push({ name, runtimeMs: s.runtimeMs, outputBytes: bytes, after, ...(element !== undefined ? { element } : {}) })
    })
  }
  return { name: plan.name, tasks }
}

/**
 * Longest runtime sum along a dependency path (ms): a task starts when the tasks it waits for have ended, as in
 * control mode (and in Dask). With `postAt`, as in dataflow mode where the benchmark functions post their outputs
 * at postAt of their runtime: a task starts once every producer has posted, postAt x its runtime after it started,
 * and a foreach instance once its element is out (functions/synthetic: element i of n at (i + 1) / n of that). The
 * latest end is then the dataflow critical path, the lower bound of a dataflow row (a foreach instance is given
 * its element's time for every input from that producer: earlier, so still a bound). Iterative: deep chains do
 * not overflow the stack.
 */
export function shapeCriticalPathMs (shape: DagShape, postAt?: number): number {
  const start = new Map<string, number>()
  const runtime = new Map(shape.tasks.map(t => [t.name, t.runtimeMs]))
  let longest = 0
  for (const t of topoOrder(shape)) {
    let at = 0
    for (const p of t.after) {
      let posted = postAt ?? 1
      if (postAt !== undefined && t.element?.task === p) posted = postAt * (t.element.index + 1) / t.element.count
      at = Math.max(at, (start.get(p) ?? 0) + posted * (runtime.get(p) ?? 0))
    }
    start.set(t.name, at)
    longest = Math.max(longest, at + t.runtimeMs)
  }
  return longest
}

export function shapeTotalRuntimeMs (shape: DagShape): number {
  return shape.tasks.reduce((a, t) => a + t.runtimeMs, 0)
}

/**
 * max(critical path, total runtime / slots): no schedule on `slots` slots can finish sooner. With `postAt`, the
 * dataflow critical path (shapeCriticalPathMs): the bound of a dataflow row, where consumers start on posted outputs.
 */
export function lowerBoundMs (shape: DagShape, slots: number, postAt?: number): number {
  return Math.max(shapeCriticalPathMs(shape, postAt), shapeTotalRuntimeMs(shape) / Math.max(1, slots))
}

/** Tasks in an order where every task comes after those it waits for (Kahn); throws on a cycle or unknown task. */
export function topoOrder (shape: DagShape): ShapeTask[] {
  const byName = new Map(shape.tasks.map(t => [t.name, t]))
  const waiting = new Map<string, number>()
  const readers = new Map<string, string[]>()
  for (const t of shape.tasks) {
    waiting.set(t.name, t.after.length)
    for (const p of t.after) {
      if (!byName.has(p)) throw new Error(`${shape.name}: task ${t.name} waits for unknown task ${p}`)
      const list = readers.get(p)
      if (list === undefined) readers.set(p, [t.name])
      else list.push(t.name)
    }
  }
  const ready = shape.tasks.filter(t => t.after.length === 0).map(t => t.name)
  const out: ShapeTask[] = []
  while (ready.length > 0) {
    const n = ready.pop()!
    out.push(byName.get(n)!)
    for (const r of readers.get(n) ?? []) {
      const left = waiting.get(r)! - 1
      waiting.set(r, left)
      if (left === 0) ready.push(r)
    }
  }
  if (out.length !== shape.tasks.length) throw new Error(`${shape.name}: the tasks form a cycle`)
  return out
}
