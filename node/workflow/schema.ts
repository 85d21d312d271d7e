import { readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import type { ErrorObject, ValidateFunction } from 'ajv'
import type { WorkflowIssue } from './errors.ts'
import type { KeyPath, WorkflowSource } from './source.ts'

/** The JSON Schema shipped in docs/workflow.schema.json, the same one editors use. */
export const workflowSchema: Record<string, unknown> = JSON.parse(
  readFileSync(new URL('../../docs/workflow.schema.json', import.meta.url), 'utf8')
)

let validate: ValidateFunction | undefined

function validator (): ValidateFunction {
  if (validate == null) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true })
    // editor hint understood by VS Code and yaml-language-server; we use it for our messages too
    ajv.addVocabulary(['patternErrorMessage'])
    validate = ajv.compile(workflowSchema)
  }
  return validate
}

function keyPath (instancePath: string): KeyPath {
  if (instancePath === '') return []
  return instancePath.slice(1).split('/').map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map(p => /^\d+$/.test(p) ? Number(p) : p)
}

function typeName (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `a ${typeof v}`
}

function toIssue (src: WorkflowSource, e: ErrorObject): WorkflowIssue | undefined {
  const path = keyPath(e.instancePath)
  if (path.length === 0 && e.keyword === 'type') return src.issue(path, 'the workflow must be a mapping (name:, steps:, ...), not %v', e.data)
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    // the branch errors below already say what is wrong
    case 'if': return undefined
    case 'additionalProperties': {
      const key = String(p.additionalProperty)
      return src.issue([...path, key], 'unknown key %v', key, { key: true })
    }
    case 'required':
      return src.issue(path, `missing required key %v`, p.missingProperty)
    case 'type': {
      if ((e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties?.oneOf != null) {
        return src.issue(path, 'must be a ref (inputs.NAME, STEP.OUTPUT, $item, $index) or { oneOf: [refs] }, not %v', e.data)
      }
      const want = String(p.type) === 'object' ? 'a mapping' : String(p.type) === 'array' ? 'a list' : `a ${String(p.type)}`
      return src.issue(path, `must be ${want}, not ${typeName(e.data)}: %v`, e.data)
    }
    case 'pattern': {
      const hint = (e.parentSchema as { patternErrorMessage?: string } | undefined)?.patternErrorMessage ?? `must match ${String(p.pattern)}`
      if (e.propertyName != null) return src.issue([...path, e.propertyName], `invalid name %v: ${hint}`, e.propertyName, { key: true })
      return src.issue(path, `invalid value %v: ${hint}`, e.data)
    }
    case 'propertyNames': return undefined
    case 'const':
      return src.issue(path, `must be ${JSON.stringify(p.allowedValue)}, not %v`, e.data)
    case 'enum':
      return src.issue(path, `must be one of ${(p.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}, not %v`, e.data)
    case 'minimum':
      return src.issue(path, `must be >= ${String(p.limit)}, not %v`, e.data)
    case 'minItems':
      return src.issue(path, `must have at least ${String(p.limit)} item(s), not %v`, e.data)
    case 'minProperties':
      return src.issue(path, `must have at least ${String(p.limit)} entry, not %v`, e.data)
    default:
      return src.issue(path, `${e.message ?? 'is invalid'}: %v`, e.data)
  }
}

/** Validates the YAML data against docs/workflow.schema.json; one issue per problem. */
export function schemaIssues (src: WorkflowSource): WorkflowIssue[] {
  const v = validator()
  if (v(src.data)) return []
  const seen = new Set<string>()
  const out: WorkflowIssue[] = []
  for (const e of v.errors ?? []) {
    const issue = toIssue(src, e)
    if (issue == null) continue
    const k = `${issue.path}\0${issue.message}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push(issue)
  }
  return out
}
