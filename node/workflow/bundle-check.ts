import { decodeValue } from '../values/codec.ts'
import { BundleError } from './errors.ts'
import type { WorkflowIssue } from './errors.ts'
import { classifyExports } from './exports.ts'
import type { WorkflowSource } from './source.ts'
import type { StepDef } from './types.ts'
import type { BundledModule, WorkflowBundle } from './bundle.ts'

/** Issues for steps whose export is missing from the module or is statically known not to be a function. */
export function checkModuleExports (src: WorkflowSource, steps: StepDef[], module: BundledModule): WorkflowIssue[] {
  const issues: WorkflowIssue[] = []
  const kinds = classifyExports(module.code, steps.map(s => s.export))
  for (const step of steps) {
    const run = `${step.module}${step.export === 'default' ? '' : `#${step.export}`}`
    const path = ['steps', step.name, 'run']
    if (!module.exports.includes(step.export)) {
      const has = module.exports.length === 0 ? 'it exports nothing' : `its exports: ${module.exports.join(', ')}`
      const what = step.export === 'default' ? 'no default export' : `no export "${step.export}"`
      issues.push(src.issue(path, `module "${step.module}" has ${what} (${has}), in %v`, run))
    } else if (kinds.get(step.export) === 'not-function') {
      issues.push(src.issue(path, `export "${step.export}" of module "${step.module}" is not a function, in %v`, run))
    }
  }
  return issues
}

const isObj = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)

/** Decodes a bundle and checks its shape (not its CIDs). */
export function decodeBundle (bytes: Uint8Array): WorkflowBundle {
  let b: unknown
  try {
    b = decodeValue(bytes)
  } catch (err) {
    throw new BundleError(`bundle is not valid dag-cbor: ${(err as Error).message}`)
  }
  if (!isObj(b)) throw new BundleError('bundle is not a map')
  if (b.format !== 'dflow-bundle/1') throw new BundleError(`bundle format is ${JSON.stringify(b.format)}, expected "dflow-bundle/1"`)
  for (const k of ['name', 'file', 'yaml'] as const) {
    if (typeof b[k] !== 'string') throw new BundleError(`bundle field "${k}" must be a string`)
  }
  const extraKeys = Object.keys(b).filter(k => !['format', 'name', 'file', 'yaml', 'modules'].includes(k))
  if (extraKeys.length > 0) throw new BundleError(`bundle has unknown fields: ${extraKeys.join(', ')}`)
  if (!isObj(b.modules)) throw new BundleError('bundle field "modules" must be a map')
  for (const [path, m] of Object.entries(b.modules)) {
    if (!isObj(m) || typeof m.code !== 'string' || typeof m.cid !== 'string' || !Array.isArray(m.exports) ||
      !m.exports.every(e => typeof e === 'string') || Object.keys(m).length !== 3) {
      throw new BundleError(`bundle module ${JSON.stringify(path)} must be { code: string, cid: string, exports: string[] }`)
    }
  }
  if ((b.file as string).includes('/') || (b.file as string).includes('\\')) throw new BundleError('bundle field "file" must be a basename')
  return b as unknown as WorkflowBundle
}
