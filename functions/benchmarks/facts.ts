/** The shape of facts.json (written by extract-facts.ts, read by generate.ts and index.ts). */

export interface InputFacts {
  /** the parameter name in the reference */
  param: string
  /** producing function, or null for a workflow input */
  from: string | null
  /** the producer's output name (or the workflow input's name) */
  output: string
  /** bytes */
  size: number
}

export interface OutputFacts {
  name: string
  /** bytes */
  size: number
  /** a `keys` output: the list a foreach iterates over */
  keys: boolean
}

export interface FunctionFacts {
  name: string
  runtimeS: number
  /** a switch node (source VIRTUAL) or the END sink: no user code in the reference */
  virtual: boolean
  inputs: InputFacts[]
  outputs: OutputFacts[]
  next: { type: string, nodes: string[], conditions?: string[] }
  /** foreach width, when the reference states it */
  splitRatio?: number
}

export interface WorkflowFacts {
  name: string
  source: string
  globalInputs: Array<{ name: string, size: number }>
  functions: FunctionFacts[]
}

export interface Facts {
  about: string
  workflows: Record<string, WorkflowFacts>
}
