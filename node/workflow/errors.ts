/** One problem found in a workflow: where it is and what value is at fault. */
export interface WorkflowIssue {
  /** the workflow file as given to the parser */
  file: string
  /** key path, e.g. `steps.count.in.chunk`; '' for the document itself (YAML syntax errors) */
  path: string
  /** 1-based, when the place has a position in the YAML source */
  line?: number
  column?: number
  /** what is wrong; contains the offending value quoted */
  message: string
  /** the offending value, as quoted in the message */
  value?: string
}

/** Renders the place of an issue: `file:line:col: path` (compiler style, so editors can jump to it). */
export function formatIssue (issue: WorkflowIssue): string {
  const pos = issue.line != null ? `:${issue.line}:${issue.column ?? 1}` : ''
  const path = issue.path !== '' ? ` ${issue.path}:` : ''
  return `${issue.file}${pos}:${path} ${issue.message}`
}

/** Quotes a value for a message: JSON, cut short so one bad blob does not flood the output. */
export function quote (value: unknown): string {
  let text: string
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value))
  } catch {
    text = String(value)
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text
}

/** The workflow is invalid; `issues` lists every problem found (the message lists them too). */
export class WorkflowValidationError extends Error {
  static readonly NAME = 'WorkflowValidationError'
  readonly issues: WorkflowIssue[]
  readonly file: string

  constructor (file: string, issues: WorkflowIssue[]) {
    const head = `invalid workflow ${file} (${issues.length} ${issues.length === 1 ? 'issue' : 'issues'})`
    super([head, ...issues.map(i => `  ${formatIssue(i)}`)].join('\n'))
    this.name = WorkflowValidationError.NAME
    this.file = file
    this.issues = issues
  }
}

/** A workflow bundle that cannot be decoded or verified (wrong CID, tampered module, bad shape). */
export class BundleError extends Error {
  static readonly NAME = 'BundleError'
  constructor (message: string) {
    super(message)
    this.name = BundleError.NAME
  }
}
