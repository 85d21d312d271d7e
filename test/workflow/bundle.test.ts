import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { decodeValue, encodeValue } from '../../node/values/codec.ts'
import type { Value } from '../../node/values/codec.ts'
import { encodeBundle, loadWorkflow, moduleCid, stepFunction, workflowFromBundle } from '../../node/workflow/bundle.ts'
import type { WorkflowBundle } from '../../node/workflow/bundle.ts'
import { classifyExports } from '../../node/workflow/exports.ts'

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const fx = (name: string): string => join(fixtures, name)

async function loadError (file: string): Promise<Error & { issues: Array<{ path: string, file: string, value?: string, line?: number }> }> {
  try {
    await loadWorkflow(file)
  } catch (err) {
    return err as Error & { issues: Array<{ path: string, file: string, value?: string, line?: number }> }
  }
  throw new Error('expected loadWorkflow to fail')
}

const tmpDirs: string[] = []
afterAll(async () => { for (const d of tmpDirs) await rm(d, { recursive: true, force: true }) })

describe('loadWorkflow', () => {
  it('bundles a .ts workflow; type-only imports are erased', async () => {
    const { workflow, bundle, cid, bytes } = await loadWorkflow(fx('wordcount.yaml'))
    expect(workflow.name).toBe('wordcount')
    expect(cid).toMatch(/^bafyrei/)
    expect(bundle.format).toBe('dflow-bundle/1')
    expect(bundle.file).toBe('wordcount.yaml')
    expect(Object.keys(bundle.modules)).toEqual(['./wordcount.ts'])
    const m = bundle.modules['./wordcount.ts']
    expect(m.exports).toEqual(['Counter', 'config', 'count', 'merge', 'notAFunction', 'split'])
    expect(m.cid).toBe(await moduleCid(m.code))
    expect(m.cid).toMatch(/^bafkrei/) // raw codec
    expect(m.code).not.toContain('dflow')
    expect(m.code).toContain('sourceMappingURL=data:application/json')
    expect(decodeValue(bytes)).toEqual(bundle)
    expect(stepFunction(bundle, workflow.steps.count)).toEqual({ code: { cid: m.cid, code: m.code }, exportName: 'count' })
  })

  it('bundles a plain .js module with no imports, default and named exports', async () => {
    const { workflow, bundle } = await loadWorkflow(fx('plain.yaml'))
    expect(workflow.steps.double.export).toBe('default')
    expect(bundle.modules['./plain.js'].exports).toEqual(['default', 'triple'])
    // the bundled module really is loadable ESM with a callable export
    const url = `data:text/javascript;base64,${Buffer.from(bundle.modules['./plain.js'].code).toString('base64')}`
    const mod = await import(url) as { default: (ctx: unknown) => Promise<unknown> }
    await expect(mod.default({ input: async () => 21 })).resolves.toEqual({ doubled: 42 })
  })

  it('bundles local imports (complex workflow)', async () => {
    const { bundle } = await loadWorkflow(fx('complex.yaml'))
    expect(bundle.modules['./complex.ts'].code).toContain('function helper(')
  })

  it('is deterministic: same input twice, and from a copy elsewhere, gives the same CID', async () => {
    const a = await loadWorkflow(fx('complex.yaml'))
    const b = await loadWorkflow(fx('complex.yaml'))
    expect(b.cid).toBe(a.cid)
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true)
    const dir = await mkdtemp(join(tmpdir(), 'dflow-wf-'))
    tmpDirs.push(dir)
    await cp(fixtures, dir, { recursive: true })
    const c = await loadWorkflow(join(dir, 'complex.yaml'))
    expect(c.cid).toBe(a.cid)
  })

  it('a module that does not exist names the step, the file and the value', async () => {
    const err = await loadError(fx('missing-module.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.issues[0]).toMatchObject({ path: 'steps.split.run', value: '"./nope.ts"', line: 4 })
    expect(err.message).toContain(`${fx('missing-module.yaml')}:4:10: steps.split.run: module "./nope.ts" does not exist`)
  })

  it('a missing export (named or default) is an error per step', async () => {
    const err = await loadError(fx('missing-export.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.issues.map(i => i.path)).toEqual(['steps.split.run', 'steps.other.run'])
    expect(err.message).toContain('steps.split.run: module "./wordcount.ts" has no export "spilt"')
    expect(err.message).toContain('"./wordcount.ts#spilt"')
    expect(err.message).toContain('"./plain.js#nothing"')
    const noDefault = await loadError(fx('no-default.yaml'))
    expect(noDefault.message).toContain('has no default export')
    expect(noDefault.message).toContain('"./wordcount.ts"')
  })

  it('an export that is not a function (number, object, class) is an error, found without running code', async () => {
    const err = await loadError(fx('not-function.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.issues.map(i => i.path)).toEqual(['steps.a.run', 'steps.b.run', 'steps.c.run'])
    expect(err.message).toContain(`${fx('not-function.yaml')}:4:10: steps.a.run: export "notAFunction" of module "./wordcount.ts" is not a function, in "./wordcount.ts#notAFunction"`)
  })

  it('an unreadable workflow file is a WorkflowValidationError naming it', async () => {
    const err = await loadError(fx('does-not-exist.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.message).toContain('does-not-exist.yaml')
  })
})

describe('classifyExports', () => {
  it('classifies esbuild output shapes', () => {
    const code = [
      'async function a(ctx) {\n}', 'function* g() {\n}', 'var b = async (ctx) => 2;', 'var c = (x) => x;', 'var d = x => x;',
      'var e = function() {\n};', 'var f = 5;', 'var h = { a: 1 };', 'var K = class {\n};', 'var al = a;', 'var call = make();',
      'var s = "x";', 'var p = (1 + 2);', 'var n = null;',
      'export {\n  a,\n  al as alias,\n  b,\n  c,\n  call,\n  d,\n  e as default,\n  f,\n  g,\n  h,\n  K,\n  n,\n  p,\n  s\n};'
    ].join('\n')
    const kinds = Object.fromEntries(classifyExports(code, ['a', 'alias', 'b', 'c', 'call', 'd', 'default', 'f', 'g', 'h', 'K', 'n', 'p', 's', 'missing']))
    expect(kinds).toEqual({
      a: 'function', alias: 'function', b: 'function', c: 'function', call: 'unknown', d: 'function', default: 'function',
      f: 'not-function', g: 'function', h: 'not-function', K: 'not-function', n: 'not-function', p: 'unknown', s: 'not-function', missing: 'unknown'
    })
  })
})

describe('workflowFromBundle', () => {
  it('verifies and re-parses a bundle without the filesystem', async () => {
    const { bytes, cid, workflow } = await loadWorkflow(fx('complex.yaml'))
    const got = await workflowFromBundle(bytes, cid)
    expect(got.workflow).toEqual(workflow)
    expect(got.bundle.file).toBe('complex.yaml')
    await expect(workflowFromBundle(bytes)).resolves.toBeDefined()
  })

  it('rejects a bundle whose CID does not match', async () => {
    const a = await loadWorkflow(fx('complex.yaml'))
    const b = await loadWorkflow(fx('plain.yaml'))
    await expect(workflowFromBundle(b.bytes, a.cid)).rejects.toMatchObject({ name: 'BundleError', message: expect.stringContaining('CID mismatch') })
  })

  it('rejects tampered code even when the bundle CID is recomputed', async () => {
    const { bundle } = await loadWorkflow(fx('wordcount.yaml'))
    const tampered = structuredClone(bundle)
    tampered.modules['./wordcount.ts'].code += '\nprocess.exit(1)'
    await expect(workflowFromBundle(encodeBundle(tampered))).rejects.toMatchObject({ name: 'BundleError', message: expect.stringContaining('does not match its CID') })
  })

  it('rejects a tampered bundle under its original CID', async () => {
    const { bytes, cid } = await loadWorkflow(fx('wordcount.yaml'))
    const copy = decodeValue(bytes) as unknown as WorkflowBundle
    copy.yaml = copy.yaml.replace('count words', 'count more words')
    await expect(workflowFromBundle(encodeBundle(copy), cid)).rejects.toMatchObject({ name: 'BundleError' })
  })

  it('rejects a bad shape, and checks exports against the bundle', async () => {
    await expect(workflowFromBundle(encodeValue({ format: 'other' }))).rejects.toMatchObject({ name: 'BundleError' })
    await expect(workflowFromBundle(new Uint8Array([1, 2, 3, 0xff]))).rejects.toMatchObject({ name: 'BundleError' })
    const { bundle } = await loadWorkflow(fx('wordcount.yaml'))
    const renamed = structuredClone(bundle)
    renamed.yaml = renamed.yaml.replace('./wordcount.ts#count', './wordcount.ts#config')
    const err = await workflowFromBundle(encodeBundle(renamed)).catch((e: Error) => e)
    expect(err).toMatchObject({ name: 'WorkflowValidationError' })
    expect((err as Error).message).toContain('wordcount.yaml:14:10: steps.count.run: export "config" of module "./wordcount.ts" is not a function')
    const missing = structuredClone(bundle)
    missing.yaml = missing.yaml.replace('./wordcount.ts#merge', './other.ts#merge')
    await expect(workflowFromBundle(encodeBundle(missing))).rejects.toMatchObject({ name: 'WorkflowValidationError', message: expect.stringContaining('module "./other.ts" is not in the bundle') })
    const extra = structuredClone(bundle) as unknown as { modules: Record<string, Value> }
    extra.modules['./x.js'] = { code: '', cid: await moduleCid(''), exports: [] }
    await expect(workflowFromBundle(encodeValue(extra as unknown as Value))).rejects.toMatchObject({ name: 'BundleError', message: expect.stringContaining('no step uses') })
  })
})
