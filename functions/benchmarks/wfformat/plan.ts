/**
 * A WfFormat trace -> a Plan (the same shape the FaaSFlow generator writes), one synthetic step per task:
 * - runtime = runtime x time scale; outputs = the task's output files, size x size scale;
 * - inputs = the files its parents (or earlier producers) make; a parent that makes no file the task reads is an
 *   ordering edge: the task reads the parent's `done` constant (the workflow language has no data-less edge, and
 *   the synthetic function ignores what it reads besides waiting for it);
 * - a file nobody makes (a stage-in file) is made by the step that reads it (`stageInBytes`), so the workflow
 *   needs no inputs;
 * - names are made valid and unique; the original task name goes into the step's description.
 */
import { RESERVED } from '../generate.ts'
import { scaleSize, scaleTime, type Plan, type PlanStep } from '../plan.ts'
import { WfFormatError, type WfTask, type WfTrace } from './parse.ts'

export const WFFORMAT_DEFAULT_SCALES = Object.freeze({ timeScale: 0.01, sizeScale: 0.01 })

// JS reserved words (step names become export names), `inputs` (not a step name) and the module's own bindings
const TAKEN = new Set([...RESERVED, 'inputs', 'synthetic', 'initWork', 'initWait', 'postAt'].map(s => s.toLowerCase()))

/** A workflow name ([a-z0-9-]+) from free text. */
export function workflowNameOf (text: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '')
  return s === '' ? 'imported' : s
}

/** Makes names valid (a letter, then [a-z0-9_]: also a JS export name) and unique within one `taken` set. */
function uniqueName (text: string, taken: Set<string>, prefix: string): string {
  let base = text.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60)
  if (!/^[a-z]/.test(base)) base = `${prefix}${base}`
  if (TAKEN.has(base)) base = `${base}_`
  let name = base
  for (let k = 2; taken.has(name); k++) name = `${base}_${k}`
  taken.add(name)
  return name
}

export interface ImportOptions {
  timeScale: number
  sizeScale: number
  /** workflow name ([a-z0-9-]+) @default from the trace's name */
  name?: string
  /** every step reads `inputs.seed` (salts its bytes, so each request makes new values; the bench needs it) */
  seed?: boolean
}

export interface ImportSummary {
  tasks: number
  /** edges from the trace's parents, and how many of them carry files / only order */
  edges: number
  dataEdges: number
  orderingEdges: number
  stageInFiles: number
  criticalPathMs: number
  totalRuntimeMs: number
  /** output bytes plus stage-in bytes, scaled */
  totalBytes: number
}

/** Task order where parents come first (Kahn); a cycle is an error naming a task on it. */
function order (trace: WfTrace, file: string): WfTask[] {
  const byName = new Map(trace.tasks.map(t => [t.name, t]))
  const left = new Map(trace.tasks.map(t => [t.name, t.parents.length]))
  const children = new Map<string, string[]>()
  for (const t of trace.tasks) for (const p of t.parents) { const c = children.get(p); if (c === undefined) children.set(p, [t.name]); else c.push(t.name) }
  const ready = trace.tasks.filter(t => t.parents.length === 0).map(t => t.name)
  const out: WfTask[] = []
  for (let i = 0; i < ready.length; i++) {
    out.push(byName.get(ready[i])!)
    for (const c of children.get(ready[i]) ?? []) {
      const n = left.get(c)! - 1
      left.set(c, n)
      if (n === 0) ready.push(c)
    }
  }
  if (out.length !== trace.tasks.length) {
    const stuck = trace.tasks.find(t => left.get(t.name)! > 0)!
    throw new WfFormatError(`${file}: the parents form a cycle through task "${stuck.name}"`)
  }
  return out
}

export function planFromTrace (trace: WfTrace, file: string, opts: ImportOptions): { plan: Plan, summary: ImportSummary } {
  const tasks = order(trace, file)
  const position = new Map(tasks.map((t, i) => [t.name, i]))
  const stepNames = new Set<string>()
  const stepOf = new Map<string, string>()
  for (const t of tasks) stepOf.set(t.name, uniqueName(t.name, stepNames, 't_'))
  // output file -> [producing task, output name]; the first producer in task order wins
  const producer = new Map<string, { task: string, out: string }>()
  const steps = new Map<string, PlanStep>()
  let totalBytes = 0
  let dataEdges = 0
  let orderingEdges = 0
  let stageInFiles = 0
  for (const t of tasks) {
    const outs = new Set<string>(['done'])
    const outputs: Record<string, number> = {}
    for (const f of t.outputs) {
      if (producer.has(f.name)) continue
      const out = uniqueName(f.name, outs, 'f_')
      producer.set(f.name, { task: t.name, out })
      outputs[out] = scaleSize(f.bytes, opts.sizeScale)
      totalBytes += outputs[out]
    }
    steps.set(t.name, {
      name: stepOf.get(t.name)!,
      runtimeMs: scaleTime(t.runtimeS, opts.timeScale),
      in: opts.seed === true ? { seed: 'inputs.seed' } : {},
      outputs,
      streams: {},
      constants: {},
      after: [],
      runs: true,
      description: `WfFormat task "${t.name}"${t.category !== undefined ? ` (${t.category})` : ''}`
    })
  }
  const needsDone = new Set<string>()
  for (const t of tasks) {
    const s = steps.get(t.name)!
    const params = new Set(Object.keys(s.in))
    const fed = new Set<string>()
    let stageIn = 0
    for (const f of t.inputs) {
      const p = producer.get(f.name)
      // a file made by an earlier task (in parent-first order) is read from it; that edge cannot close a cycle
      if (p !== undefined && p.task !== t.name && position.get(p.task)! < position.get(t.name)!) {
        const ref = `${stepOf.get(p.task)}.${p.out}`
        if (Object.values(s.in).includes(ref)) continue
        s.in[uniqueName(f.name, params, 'f_')] = ref
        fed.add(p.task)
      } else if (p === undefined) {
        stageIn += scaleSize(f.bytes, opts.sizeScale)
        stageInFiles++
      }
    }
    for (const parent of t.parents) {
      if (fed.has(parent)) { dataEdges++; continue }
      s.in[uniqueName(`after_${stepOf.get(parent)}`, params, 'p_')] = `${stepOf.get(parent)}.done`
      needsDone.add(parent)
      orderingEdges++
    }
    s.after = [...fed, ...t.parents.filter(p => !fed.has(p))].map(n => stepOf.get(n)!)
    if (stageIn > 0) { s.stageInBytes = stageIn; totalBytes += stageIn }
  }
  // sinks give the workflow's outputs: their `done` marker (a few bytes, not their files)
  const read = new Set(tasks.flatMap(t => steps.get(t.name)!.after))
  const outputs: Record<string, string> = {}
  for (const t of tasks) {
    const s = steps.get(t.name)!
    if (!read.has(s.name)) { needsDone.add(t.name); outputs[s.name] = `${s.name}.done` }
  }
  for (const n of needsDone) {
    const s = steps.get(n)!
    if (s.outputs.done !== undefined) throw new WfFormatError(`${file}: internal: output name "done" taken in task "${n}"`)
    s.constants.done = true
  }
  const list = tasks.map(t => steps.get(t.name)!)
  // critical path and total over the scaled runtimes, in parent-first order
  const finish = new Map<string, number>()
  let critical = 0
  for (const s of list) {
    let start = 0
    for (const p of s.after) start = Math.max(start, finish.get(p) ?? 0)
    finish.set(s.name, start + s.runtimeMs)
    critical = Math.max(critical, start + s.runtimeMs)
  }
  // the file's name tells traces apart better than their `name` (often generic, e.g. "workflow-test")
  const name = workflowNameOf(opts.name ?? file.replace(/^.*[\\/]/, '').replace(/\.json$/i, ''))
  const plan: Plan = {
    name,
    workflowName: name,
    steps: list,
    outputs,
    description: `WfFormat ${trace.schemaVersion} trace "${trace.name}" (${tasks.length} tasks), imported by dflow import wfformat: timeScale ${opts.timeScale}, sizeScale ${opts.sizeScale}`,
    source: `dflow import wfformat from ${file.replace(/^.*[\\/]/, '')}`
  }
  const edges = tasks.reduce((a, t) => a + t.parents.length, 0)
  return {
    plan,
    summary: { tasks: tasks.length, edges, dataEdges, orderingEdges, stageInFiles, criticalPathMs: critical, totalRuntimeMs: list.reduce((a, s) => a + s.runtimeMs, 0), totalBytes }
  }
}
