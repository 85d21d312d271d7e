import { expect } from 'vitest'
import { parseWorkflow } from '../../node/workflow/parse.ts'
import type { WorkflowIssue } from '../../node/workflow/errors.ts'

/** A small valid workflow to break in one place per test. */
export const BASE = `name: wordcount
inputs: [text]
outputs:
  total: merge.total
steps:
  split:
    run: ./wordcount.ts#split
    in: { text: inputs.text }
    out: [chunks]
  count:
    run: ./wordcount.ts#count
    foreach: split.chunks
    in: { chunk: $item }
    out: [counts]
  merge:
    run: ./wordcount.ts#merge
    in: { counts: count.counts }
    out: [total]
`

export function catchError (fn: () => unknown): Error & { issues: WorkflowIssue[] } {
  try {
    fn()
  } catch (err) {
    return err as Error & { issues: WorkflowIssue[] }
  }
  throw new Error('expected an error, got none')
}

/**
 * Asserts that parsing fails with a WorkflowValidationError whose message names the file, the place
 * (key path and line:col) and quotes the value.
 */
export function expectIssue (yaml: string, want: { path: string, value: string, line?: number, column?: number, text?: RegExp }, file = 'flows/test.yaml'): WorkflowIssue {
  const err = catchError(() => parseWorkflow(yaml, file))
  expect(err.name).toBe('WorkflowValidationError')
  const issue = err.issues.find(i => i.path === want.path)
  expect(issue, `no issue at ${want.path}; got:\n${err.message}`).toBeDefined()
  expect(issue!.file).toBe(file)
  expect(issue!.value).toBe(JSON.stringify(want.value))
  if (want.line != null) expect(issue!.line).toBe(want.line)
  if (want.column != null) expect(issue!.column).toBe(want.column)
  expect(issue!.line).toBeTypeOf('number')
  const lineText = `${file}:${issue!.line}:${issue!.column}: ${want.path}: `
  const rendered = err.message.split('\n').find(l => l.includes(lineText))
  expect(rendered, `message lacks "${lineText}":\n${err.message}`).toBeDefined()
  expect(rendered).toContain(JSON.stringify(want.value))
  if (want.text != null) expect(rendered).toMatch(want.text)
  return issue!
}
