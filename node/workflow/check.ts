import { findCycles } from './graph.ts'
import { DEFAULT_MEMORY_MB, DEFAULT_RETRIES, DEFAULT_TIMEOUT_MS, parseDuration, parseRef, parseRun } from './refs.ts'
import type { WorkflowIssue } from './errors.ts'
import type { KeyPath, WorkflowSource } from './source.ts'
import type { Condition, InputRef, Ref, Source, StepDef, StepRef, Trigger, Workflow } from './types.ts'

/** The YAML data once it matches the schema. */
interface RawStep {
  run: string
  in?: Record<string, string | { oneOf: string[] }>
  out?: string[]
  foreach?: string
  when?: { ref: string, equals?: unknown, in?: unknown[] }
  timeout?: string
  retries?: number
  memory?: number
  trigger?: Trigger
}
interface RawWorkflow {
  version?: 1
  name: string
  description?: string
  inputs?: string[]
  outputs?: Record<string, string | { oneOf: string[] }>
  steps: Record<string, RawStep>
}

const isObj = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v)
const strs = (v: unknown): string[] => Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
const sources = (v: unknown): Record<string, string | { oneOf: string[] }> => {
  const out: Record<string, string | { oneOf: string[] }> = {}
  if (!isObj(v)) return out
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string') out[k] = x
    else if (isObj(x) && Array.isArray(x.oneOf) && x.oneOf.length > 0) out[k] = { oneOf: strs(x.oneOf) }
  }
  return out
}

/**
 * Keeps the parts of the data that have the right shape, so the semantic checks can run (and report) even
 * when the schema found problems elsewhere; the badly shaped parts are reported by the schema.
 */
function sanitize (data: unknown): RawWorkflow {
  const d = isObj(data) ? data : {}
  const steps: Record<string, RawStep> = {}
  for (const [name, v] of Object.entries(isObj(d.steps) ? d.steps : {})) {
    const s = isObj(v) ? v : {}
    const when = isObj(s.when) && typeof s.when.ref === 'string' ? s.when as RawStep['when'] : undefined
    steps[name] = {
      run: str(s.run) ?? '',
      in: sources(s.in),
      out: strs(s.out),
      foreach: str(s.foreach),
      when,
      timeout: str(s.timeout),
      retries: Number.isInteger(s.retries) && (s.retries as number) >= 0 ? s.retries as number : undefined,
      memory: Number.isInteger(s.memory) ? s.memory as number : undefined,
      trigger: s.trigger === 'eager' ? 'eager' : 'data'
    }
  }
  return { name: str(d.name) ?? '', description: str(d.description), inputs: strs(d.inputs), outputs: sources(d.outputs), steps }
}

/**
 * Checks what the schema cannot (refs resolve, $item only under foreach, no duplicates, no cycles) and builds
 * the model. The model is only meaningful when the schema check and these checks found no issue.
 */
export function checkWorkflow (src: WorkflowSource): { workflow: Workflow, issues: WorkflowIssue[] } {
  const raw = sanitize(src.data)
  const issues: WorkflowIssue[] = []
  const inputs = raw.inputs ?? []
  const stepNames = Object.keys(raw.steps)

  inputs.forEach((name, i) => {
    if (inputs.indexOf(name) !== i) issues.push(src.issue(['inputs', i], 'duplicate workflow input %v', name))
  })
  if (raw.steps.inputs != null) {
    issues.push(src.issue(['steps', 'inputs'], 'a step may not be named %v (inputs.NAME refers to workflow inputs)', 'inputs', { key: true }))
  }
  for (const [name, step] of Object.entries(raw.steps)) {
    (step.out ?? []).forEach((o, i) => {
      if (step.out!.indexOf(o) !== i) issues.push(src.issue(['steps', name, 'out', i], `duplicate output %v of step "${name}"`, o))
    })
  }

  // where: what the ref may be; inForeach: whether $item/$index are in scope
  const resolve = (text: string, path: KeyPath, opts: { inForeach: boolean, what: string, noItem?: string }): Ref | undefined => {
    const ref = parseRef(text)
    if (ref == null) { issues.push(src.issue(path, `invalid ref %v: must be inputs.NAME, STEP.OUTPUT, $item or $index`, text)); return undefined }
    if (ref.kind === 'item' || ref.kind === 'index') {
      if (opts.noItem != null) issues.push(src.issue(path, `${opts.what} %v: ${opts.noItem}`, text))
      else if (!opts.inForeach) issues.push(src.issue(path, `${opts.what} %v: ${text} is only allowed in a step with foreach`, text))
      return ref
    }
    if (ref.kind === 'input') {
      if (!inputs.includes(ref.name)) {
        const known = inputs.length === 0 ? 'the workflow declares no inputs' : `workflow inputs are: ${inputs.join(', ')}`
        issues.push(src.issue(path, `${opts.what} %v names unknown workflow input "${ref.name}" (${known})`, text))
      }
      return ref
    }
    const step = raw.steps[ref.step]
    if (step == null || ref.step === 'inputs') {
      issues.push(src.issue(path, `${opts.what} %v names unknown step "${ref.step}" (steps are: ${stepNames.join(', ')})`, text))
    } else if (!(step.out ?? []).includes(ref.output)) {
      const outs = (step.out ?? []).length === 0 ? 'it declares no outputs' : `its outputs: ${step.out!.join(', ')}`
      issues.push(src.issue(path, `${opts.what} %v names unknown output "${ref.output}" of step "${ref.step}" (${outs})`, text))
    }
    return ref
  }
  const source = (value: string | { oneOf: string[] }, path: KeyPath, opts: { inForeach: boolean, what: string, noItem?: string }): Source | undefined => {
    if (typeof value === 'string') return resolve(value, path, opts)
    const refs = value.oneOf.map((r, i) => resolve(r, [...path, 'oneOf', i], opts))
    return refs.every(r => r != null) ? { kind: 'oneOf', refs: refs as Ref[] } : undefined
  }
  const noItemHere = 'foreach must be STEP.OUTPUT or inputs.NAME'

  const steps: Record<string, StepDef> = {}
  for (const [name, step] of Object.entries(raw.steps)) {
    const base: KeyPath = ['steps', name]
    const inForeach = step.foreach != null
    const params: Record<string, Source> = {}
    for (const [param, value] of Object.entries(step.in ?? {})) {
      const s = source(value, [...base, 'in', param], { inForeach, what: 'ref' })
      if (s != null) params[param] = s
    }
    let foreach: StepRef | InputRef | undefined
    if (step.foreach != null) {
      const r = resolve(step.foreach, [...base, 'foreach'], { inForeach: false, what: 'foreach', noItem: noItemHere })
      if (r != null && (r.kind === 'step' || r.kind === 'input')) foreach = r
    }
    let when: Condition | undefined
    if (step.when != null) {
      const w = step.when
      const hasEquals = 'equals' in w
      const hasIn = 'in' in w
      if (hasEquals === hasIn) {
        issues.push(src.issue([...base, 'when'], 'when needs exactly one of "equals" or "in", got %v', w))
      }
      const r = resolve(w.ref, [...base, 'when', 'ref'], { inForeach, what: 'when ref', noItem: 'a condition must test STEP.OUTPUT or inputs.NAME' })
      if (r != null && (r.kind === 'step' || r.kind === 'input')) {
        when = hasEquals ? { ref: r, equals: w.equals } : { ref: r, in: w.in ?? [] }
      }
    }
    let timeoutMs = DEFAULT_TIMEOUT_MS
    if (step.timeout != null) {
      const ms = parseDuration(step.timeout)
      if (ms == null || ms <= 0) issues.push(src.issue([...base, 'timeout'], 'timeout %v must be a positive duration like 500ms, 30s or 2m', step.timeout))
      else timeoutMs = ms
    }
    const run = parseRun(step.run)
    steps[name] = {
      name,
      module: run.module,
      export: run.export,
      in: params,
      out: [...(step.out ?? [])],
      ...(foreach != null ? { foreach } : {}),
      ...(when != null ? { when } : {}),
      timeoutMs,
      retries: step.retries ?? DEFAULT_RETRIES,
      memoryMb: step.memory ?? DEFAULT_MEMORY_MB,
      trigger: step.trigger ?? 'data'
    }
  }

  const outputs: Record<string, Source> = {}
  for (const [name, value] of Object.entries(raw.outputs ?? {})) {
    const s = source(value, ['outputs', name], { inForeach: false, what: 'output ref', noItem: 'workflow outputs must be STEP.OUTPUT, inputs.NAME or oneOf' })
    if (s != null) outputs[name] = s
  }

  const workflow: Workflow = {
    version: 1,
    name: raw.name,
    ...(raw.description !== undefined ? { description: raw.description } : {}),
    inputs: [...inputs],
    outputs,
    steps
  }
  for (const cycle of findCycles(workflow)) {
    const text = cycle.join(' -> ')
    issues.push(src.issue(['steps', cycle[0]], `cycle between steps: %v`, text, { key: true }))
  }
  return { workflow, issues }
}
