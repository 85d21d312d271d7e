import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { decodeBundle } from '../../node/workflow/bundle-check.ts'
import { encodeBundle, loadWorkflow, moduleCid, workflowFromBundle, type WorkflowBundle } from '../../node/workflow/bundle.ts'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { parseWorkflow } from '../../node/workflow/parse.ts'
import { bytesLike, checkCodec, checkCodecAsync, encodeCbor, mutated, TEST_TIMEOUT_MS } from './harness.ts'

const ERR = ['BundleError', 'WorkflowValidationError']

/** A string with a few edits: characters inserted, deleted or replaced at random places. */
function edited (text: string): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.string({ maxLength: 8 }))
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map(edits => {
    let t = text
    for (const [at, del, ins] of edits) {
      const i = t.length === 0 ? 0 : at % t.length
      t = t.slice(0, i) + ins + t.slice(i + del)
    }
    return t
  })
}

describe('fuzz: workflow bundles (node/workflow/bundle*.ts)', () => {
  let bundles: WorkflowBundle[]
  beforeAll(async () => {
    bundles = await Promise.all(exampleWorkflows.slice(0, 3).map(async ex => (await loadWorkflow(ex.path)).bundle))
  }, 120_000)
  const some = (): fc.Arbitrary<WorkflowBundle> => fc.constantFrom(...bundles)

  it('YAML that parses but cannot convert (an alias before its anchor) is a WorkflowValidationError (found by the fuzzer)', () => {
    expect(() => parseWorkflow('version: 1\nname: *x\nsteps: {}\n', 'w.yaml')).toThrow(expect.objectContaining({ name: 'WorkflowValidationError', message: expect.stringMatching(/Unresolved alias/) }))
  })

  it('the real bundles verify', async () => {
    for (const b of bundles) expect((await workflowFromBundle(encodeBundle(b))).bundle.name).toBe(b.name)
  })

  it('any bytes decode to a bundle or a BundleError (shape check)', () => {
    checkCodec(bytesLike(some().map(encodeBundle)), decodeBundle, ERR)
  }, TEST_TIMEOUT_MS)

  it('any bytes verify to a workflow or a BundleError / WorkflowValidationError', async () => {
    await checkCodecAsync(bytesLike(some().map(encodeBundle)), async bytes => await workflowFromBundle(bytes), ERR)
    await checkCodecAsync(mutated(some() as unknown as fc.Arbitrary<Record<string, unknown>>).map(encodeCbor), async bytes => await workflowFromBundle(bytes), ERR)
  }, TEST_TIMEOUT_MS)

  it('a bundle whose YAML was edited verifies or fails with a typed error', async () => {
    const arb = some().chain(b => edited(b.yaml).map(yaml => ({ ...b, yaml })))
    await checkCodecAsync(arb, async b => await workflowFromBundle(encodeBundle(b)), ERR)
  }, TEST_TIMEOUT_MS)

  it('a bundle whose module code was edited (and its CID recomputed, as an attacker would) verifies or fails typed', async () => {
    const arb = some().chain(b => {
      const paths = Object.keys(b.modules)
      return fc.tuple(fc.constant(b), fc.constantFrom(...paths)).chain(([bb, path]) => edited(bb.modules[path].code).map(code => ({ b: bb, path, code })))
    })
    await checkCodecAsync(arb, async ({ b, path, code }) => {
      const modules = { ...b.modules, [path]: { ...b.modules[path], code, cid: await moduleCid(code) } }
      return await workflowFromBundle(encodeBundle({ ...b, modules }))
    }, ERR)
  }, TEST_TIMEOUT_MS)

  it('a bundle with a module entry replaced by anything verifies or fails typed', async () => {
    const arb = some().chain(b => fc.tuple(fc.constant(b), mutated(fc.constantFrom(...Object.values(b.modules)) as unknown as fc.Arbitrary<Record<string, unknown>>), fc.constantFrom(...Object.keys(b.modules))))
    await checkCodecAsync(arb, async ([b, m, path]) => await workflowFromBundle(encodeCbor({ ...b, modules: { ...b.modules, [path]: m } })), ERR)
  }, TEST_TIMEOUT_MS)
})
