import { WorkflowValidationError } from './errors.ts'
import { checkWorkflow } from './check.ts'
import { schemaIssues } from './schema.ts'
import { WorkflowSource } from './source.ts'
import type { Workflow } from './types.ts'

/**
 * Parses and validates a workflow file (docs/workflow.md). `file` names the file in messages.
 * Throws WorkflowValidationError listing every issue found: YAML syntax errors alone (nothing else can be checked
 * then), else schema errors and semantic ones (refs, foreach, when/oneOf, durations, cycles) together.
 * Modules are not looked at here; see loadWorkflow in bundle.ts.
 */
export function parseWorkflow (text: string, file: string): Workflow {
  const src = new WorkflowSource(text, file)
  const syntax = src.syntaxIssues()
  if (syntax.length > 0) throw new WorkflowValidationError(file, syntax)
  const schema = schemaIssues(src)
  const { workflow, issues } = checkWorkflow(src)
  // a semantic issue at or under a place the schema already rejected says the same thing twice
  const under = (path: string, parent: string): boolean => path === parent || path.startsWith(`${parent}.`) || path.startsWith(`${parent}[`) || parent === ''
  const semantic = issues.filter(i => !schema.some(s => under(i.path, s.path)))
  const all = [...schema, ...semantic]
  if (all.length > 0) throw new WorkflowValidationError(file, all)
  return workflow
}
