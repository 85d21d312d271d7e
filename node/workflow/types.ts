/**
 * The validated, in-memory form of a workflow file (docs/workflow.md). The parser turns YAML into this;
 * the scheduler only ever sees this form.
 */

/** `inputs.NAME` */
export interface InputRef { kind: 'input', name: string }
/** `STEP.OUTPUT` */
export interface StepRef { kind: 'step', step: string, output: string }
/** `$item`: the foreach element of this instance */
export interface ItemRef { kind: 'item' }
/** `$index`: the foreach position of this instance */
export interface IndexRef { kind: 'index' }

export type Ref = InputRef | StepRef | ItemRef | IndexRef

/** `{ oneOf: [a.x, b.y] }`: the first ref in list order that was produced (not skipped). */
export interface OneOf { kind: 'oneOf', refs: Ref[] }

/** What a parameter or a workflow output reads. */
export type Source = Ref | OneOf

export interface Condition {
  ref: StepRef | InputRef
  /** exactly one of equals / in is set */
  equals?: unknown
  in?: unknown[]
}

export type Trigger = 'data' | 'eager'

export interface StepDef {
  name: string
  /** module path as written, relative to the workflow file (e.g. ./wordcount.ts) */
  module: string
  /** export name; 'default' when the `run` had no '#' */
  export: string
  in: Record<string, Source>
  out: string[]
  foreach?: StepRef | InputRef
  when?: Condition
  timeoutMs: number
  retries: number
  memoryMb: number
  trigger: Trigger
}

export interface Workflow {
  version: 1
  name: string
  description?: string
  inputs: string[]
  outputs: Record<string, Source>
  /** in file order */
  steps: Record<string, StepDef>
}

/** Render a ref as written in YAML (for messages). */
export function refToString (ref: Source): string {
  switch (ref.kind) {
    case 'input': return `inputs.${ref.name}`
    case 'step': return `${ref.step}.${ref.output}`
    case 'item': return '$item'
    case 'index': return '$index'
    case 'oneOf': return `{ oneOf: [${ref.refs.map(refToString).join(', ')}] }`
  }
}
