import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import * as esbuild from 'esbuild'
import * as raw from 'multiformats/codecs/raw'
import { cidOfBytes, encodeValue } from '../values/codec.ts'
import type { Value } from '../values/codec.ts'
import { BundleError, WorkflowValidationError } from './errors.ts'
import type { WorkflowIssue } from './errors.ts'
import { checkModuleExports, decodeBundle } from './bundle-check.ts'
import { parseWorkflow } from './parse.ts'
import { WorkflowSource } from './source.ts'
import type { FunctionCode } from '../executor/types.ts'
import type { StepDef, Workflow } from './types.ts'

const log = defaultLogger().forComponent('dflow:workflow')

export const BUNDLE_FORMAT = 'dflow-bundle/1'

/** One bundled module: esbuild output (ESM, inline source map), its CID (raw, sha2-256) and its export names. */
export interface BundledModule {
  code: string
  cid: string
  exports: string[]
}

/** A workflow with its code, self-contained: what peers fetch and verify before running anything. See docs/workflow.md. */
export interface WorkflowBundle {
  format: typeof BUNDLE_FORMAT
  name: string
  /** the workflow file's basename */
  file: string
  yaml: string
  /** keyed by the module path as written in `run`, without `#export` */
  modules: Record<string, BundledModule>
}

export interface LoadedWorkflow {
  workflow: Workflow
  bundle: WorkflowBundle
  /** the workflow id: CID (dag-cbor, sha2-256) of `bytes` */
  cid: string
  /** the bundle, dag-cbor encoded */
  bytes: Uint8Array
}

/** CIDv1 raw sha2-256 of the UTF-8 code. */
export async function moduleCid (code: string): Promise<string> {
  return (await cidOfBytes(new TextEncoder().encode(code), raw.code)).toString()
}

export function encodeBundle (bundle: WorkflowBundle): Uint8Array {
  return encodeValue(bundle as unknown as Value)
}

/** The workflow id of an encoded bundle. */
export async function bundleCid (bytes: Uint8Array): Promise<string> {
  return (await cidOfBytes(bytes)).toString()
}

/** The steps using each distinct module, in file order. */
function stepsByModule (workflow: Workflow): Map<string, StepDef[]> {
  const out = new Map<string, StepDef[]>()
  for (const step of Object.values(workflow.steps)) out.set(step.module, [...(out.get(step.module) ?? []), step])
  return out
}

async function bundleModule (dir: string, modulePath: string): Promise<{ module?: BundledModule, error?: string }> {
  const entry = resolve(dir, modulePath)
  const st = await stat(entry).catch(() => undefined)
  if (st == null || !st.isFile()) return { error: `module %v does not exist (looked for ${entry})` }
  try {
    const result = await esbuild.build({
      entryPoints: [entry],
      // paths in the output (comments, source map) are relative to the workflow's folder, so the bundle,
      // and so the workflow id, does not depend on where the repository is checked out
      absWorkingDir: dir,
      outfile: join(dir, '__dflow_bundle.js'),
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      metafile: true,
      sourcemap: 'inline',
      write: false,
      logLevel: 'silent'
    })
    const code = result.outputFiles[0].text
    const exports = [...(Object.values(result.metafile.outputs)[0]?.exports ?? [])].sort()
    return { module: { code, cid: await moduleCid(code), exports } }
  } catch (err) {
    const errors = (err as { errors?: esbuild.Message[] }).errors
    const why = errors != null && errors.length > 0
      ? errors.map(e => `${e.location != null ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : ''}${e.text}`).join('; ')
      : String(err)
    return { error: `module %v could not be bundled: ${why}` }
  }
}

/** Bundles the modules of a parsed workflow; throws WorkflowValidationError naming each step whose module or export is bad. */
export async function bundleWorkflow (workflow: Workflow, yaml: string, file: string): Promise<WorkflowBundle> {
  const src = new WorkflowSource(yaml, file)
  const dir = dirname(resolve(file))
  const issues: WorkflowIssue[] = []
  const modules: Record<string, BundledModule> = {}
  for (const [modulePath, steps] of stepsByModule(workflow)) {
    const { module, error } = await bundleModule(dir, modulePath)
    if (module == null) {
      for (const step of steps) issues.push(src.issue(['steps', step.name, 'run'], error ?? 'module %v is invalid', modulePath))
      continue
    }
    modules[modulePath] = module
    issues.push(...checkModuleExports(src, steps, module))
  }
  if (issues.length > 0) throw new WorkflowValidationError(file, issues)
  return { format: BUNDLE_FORMAT, name: workflow.name, file: basename(file), yaml, modules }
}

/**
 * Reads, validates and bundles a workflow file. Every check (YAML, schema, refs, modules exist, exports exist and
 * are functions) happens here, before anything runs; user code is bundled, never executed.
 */
export async function loadWorkflow (path: string): Promise<LoadedWorkflow> {
  const yaml = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new WorkflowValidationError(path, [{ file: path, path: '', message: `cannot read workflow file ${JSON.stringify(path)}: ${err.code ?? err.message}`, value: JSON.stringify(path) }])
  })
  const workflow = parseWorkflow(yaml, path)
  const bundle = await bundleWorkflow(workflow, yaml, path)
  const bytes = encodeBundle(bundle)
  const cid = await bundleCid(bytes)
  log('loaded workflow %s from %s: %s (%d bytes, %d modules)', workflow.name, path, cid, bytes.length, Object.keys(bundle.modules).length)
  return { workflow, bundle, cid, bytes }
}

/**
 * Decodes and verifies a bundle received from elsewhere, with no filesystem access: its CID (when `expectedCid` is
 * given), its shape, every module's CID, then the YAML and every step's module/export against the bundle.
 * Throws BundleError for a bad or unverifiable bundle, WorkflowValidationError for an invalid workflow.
 */
export async function workflowFromBundle (bundleBytes: Uint8Array, expectedCid?: string): Promise<{ workflow: Workflow, bundle: WorkflowBundle }> {
  if (expectedCid != null) {
    const actual = await bundleCid(bundleBytes)
    if (actual !== expectedCid) throw new BundleError(`bundle CID mismatch: expected ${expectedCid}, got ${actual}`)
  }
  const bundle = decodeBundle(bundleBytes)
  for (const [path, m] of Object.entries(bundle.modules)) {
    const cid = await moduleCid(m.code)
    if (cid !== m.cid) throw new BundleError(`bundle module ${JSON.stringify(path)}: code does not match its CID ${m.cid} (got ${cid})`)
  }
  const workflow = parseWorkflow(bundle.yaml, bundle.file)
  if (workflow.name !== bundle.name) throw new BundleError(`bundle name ${JSON.stringify(bundle.name)} differs from the workflow's name ${JSON.stringify(workflow.name)}`)
  const src = new WorkflowSource(bundle.yaml, bundle.file)
  const issues: WorkflowIssue[] = []
  const used = stepsByModule(workflow)
  for (const [modulePath, steps] of used) {
    const module = bundle.modules[modulePath]
    if (module == null) {
      for (const step of steps) issues.push(src.issue(['steps', step.name, 'run'], 'module %v is not in the bundle', modulePath))
      continue
    }
    issues.push(...checkModuleExports(src, steps, module))
  }
  if (issues.length > 0) throw new WorkflowValidationError(bundle.file, issues)
  const extra = Object.keys(bundle.modules).filter(p => !used.has(p))
  if (extra.length > 0) throw new BundleError(`bundle has modules no step uses: ${extra.map(p => JSON.stringify(p)).join(', ')}`)
  return { workflow, bundle }
}

/** The code and export the executor loads for a step. */
export function stepFunction (bundle: WorkflowBundle, step: StepDef): { code: FunctionCode, exportName: string } {
  const module = bundle.modules[step.module]
  if (module == null) throw new BundleError(`step ${JSON.stringify(step.name)}: module ${JSON.stringify(step.module)} is not in the bundle`)
  return { code: { cid: module.cid, code: module.code }, exportName: step.export }
}
