/**
 * `dflow import wfformat`: small WfFormat traces written here (schema 1.4 and 1.0 shapes, stage-in files, ordering
 * parents that pass no file, a wide fan-in, names that need fixing), checked against the trace (steps, edges,
 * sizes, summary), a deep and large trace, the errors, and one import run on a real testnet in both modes.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { importWfFormat } from '../../functions/benchmarks/wfformat/write.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { startTestnet } from '../../testnet/index.ts'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))

async function dflow (args: string[], timeout = 120_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { timeout }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

interface T { name: string, parents: string[], runtime: number, in: Array<[string, number]>, out: Array<[string, number]> }

/** A 1.4 document (tasks, runtimeInSeconds, sizeInBytes) or a 1.0 one (jobs, runtime, size). */
function trace (tasks: T[], version: '1.4' | '1.0'): string {
  const modern = version === '1.4'
  const file = (link: string) => ([name, bytes]: [string, number]) => modern ? { link, name, sizeInBytes: bytes } : { link, name, size: bytes }
  const list = tasks.map((t, i) => ({
    name: t.name,
    ...(modern ? { id: `ID${String(i + 1).padStart(7, '0')}`, runtimeInSeconds: t.runtime } : { runtime: t.runtime }),
    type: 'compute',
    parents: t.parents,
    files: [...t.in.map(file('input')), ...t.out.map(file('output'))]
  }))
  return JSON.stringify({ name: 'made-here', schemaVersion: version, workflow: modern ? { tasks: list } : { jobs: list } })
}

/** stage-in files, a parent that passes no file (ordering), a 30-wide fan-in, names to fix (reserved, clashing). */
const mini: T[] = [
  { name: 'stage_a', parents: [], runtime: 0.5, in: [['ref.fa', 1000]], out: [['a.out', 5000]] },
  { name: 'stage-b', parents: [], runtime: 0.2, in: [['ref.fa', 1000], ['b.in', 300]], out: [['b.out', 200]] },
  { name: 'order_c', parents: ['stage_a'], runtime: 0.3, in: [], out: [['c.out', 100]] },
  ...Array.from({ length: 30 }, (_, i): T => ({ name: `w.${i}`, parents: ['stage-b'], runtime: 0.1 + i / 100, in: [['b.out', 200]], out: [[`w${i}.dat`, 64 * (i + 1)]] })),
  { name: 'join.all-1', parents: [...Array.from({ length: 30 }, (_, i) => `w.${i}`), 'order_c'], runtime: 0.4, in: [...Array.from({ length: 30 }, (_, i): [string, number] => [`w${i}.dat`, 64 * (i + 1)]), ['c.out', 100]], out: [['final', 10]] },
  { name: 'class', parents: ['join.all-1'], runtime: 0.1, in: [], out: [] },
  { name: 'dup-x', parents: [], runtime: 0.1, in: [], out: [['x', 1]] },
  { name: 'dup_x', parents: ['dup-x'], runtime: 0.1, in: [['x', 1]], out: [] }
]

/** the synthetic specs the module passes per export */
async function specs (module: string): Promise<Map<string, { runtimeMs: number, inputs: string[], outputs: Record<string, number>, stageInBytes?: number, constants?: Record<string, unknown> }>> {
  const out = new Map()
  for (const line of (await readFile(module, 'utf8')).split('\n')) {
    const m = /^export const (\w+) = synthetic\(\{ postAt, (.*)\)$/.exec(line)
    if (m !== null) out.set(m[1], JSON.parse(`{${m[2]}`))
  }
  return out
}

describe('dflow import wfformat', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'dflow-wfformat-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  for (const version of ['1.4', '1.0'] as const) {
    it(`schema ${version}: one valid step per task, edges and sizes as in the trace`, async () => {
      const file = join(dir, `mini-${version}.json`)
      await writeFile(file, trace(mini, version))
      const r = importWfFormat(file, join(dir, `out-${version}`), { timeScale: 0.01, sizeScale: 0.1 })
      expect(r.schemaVersion).toBe(version)
      await loadWorkflow(r.yaml) // the schema and semantic checks pass
      const doc = parse(await readFile(r.yaml, 'utf8')) as { inputs: string[], outputs: Record<string, string>, steps: Record<string, { description: string, in: Record<string, string>, out: string[] }> }
      expect(doc.inputs).toEqual([])
      const names = Object.keys(doc.steps)
      expect(names).toHaveLength(mini.length)
      for (const n of names) expect(n).toMatch(/^[a-z][a-z0-9_]*$/)
      expect(names).not.toContain('class')
      const stepOf = new Map(mini.map(t => [t.name, names.find(n => doc.steps[n].description.includes(`"${t.name}"`))!]))
      expect(new Set(stepOf.values()).size).toBe(mini.length)
      const sp = await specs(r.module)
      for (const t of mini) {
        const s = doc.steps[stepOf.get(t.name)!]
        // every parent, and only parents, is read: through a file or its `done` marker
        const read = new Set(Object.values(s.in).map(ref => ref.split('.')[0]))
        expect(read, t.name).toEqual(new Set(t.parents.map(p => stepOf.get(p))))
        const spec = sp.get(stepOf.get(t.name)!)!
        expect(spec.runtimeMs).toBe(Math.round(t.runtime * 1000 * 0.01))
        expect(Object.values(spec.outputs).sort((a, b) => a - b)).toEqual(t.out.map(([, b]) => Math.max(Math.min(b, 8), Math.round(b * 0.1))).sort((a, b) => a - b))
      }
      // files from parents are read as data; a parent that passes nothing is read through `done`
      const join1 = doc.steps[stepOf.get('join.all-1')!]
      expect(Object.values(join1.in).filter(ref => !ref.endsWith('.done'))).toHaveLength(31)
      expect(Object.values(doc.steps[stepOf.get('order_c')!].in)).toEqual([`${stepOf.get('stage_a')}.done`])
      expect(sp.get(stepOf.get('stage_a')!)!.constants).toEqual({ done: true })
      // stage-in files are made by their readers, at their scaled size
      expect(sp.get(stepOf.get('stage_a')!)!.stageInBytes).toBe(100)
      expect(sp.get(stepOf.get('stage-b')!)!.stageInBytes).toBe(130)
      expect(sp.get(stepOf.get('w.0')!)!.stageInBytes).toBeUndefined()
      // summary: critical path stage-b 2 + w.29 4 + join 4 + class 1 = 11 ms (stage_a 5 + order_c 3 + 4 + 1 = 13)
      expect(r.summary).toMatchObject({ tasks: mini.length, orderingEdges: 2, criticalPathMs: 13 })
      expect(r.summary.edges).toBe(mini.reduce((a, t) => a + t.parents.length, 0))
      expect(Object.values(doc.outputs).sort()).toEqual([`${stepOf.get('class')}.done`, `${stepOf.get('dup_x')}.done`])
    })
  }

  it('refuses other schema versions and broken traces, naming the file and schemaVersion', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['v15.json', { schemaVersion: '1.5', workflow: { specification: {} } }, /v15\.json: schemaVersion "1\.5" is not supported/],
      ['none.json', { workflow: { tasks: [] } }, /none\.json: schemaVersion null is not supported/],
      ['jobs14.json', { schemaVersion: '1.4', workflow: { jobs: [] } }, /jobs14\.json: schemaVersion 1\.4 needs workflow\.tasks/],
      ['parent.json', { schemaVersion: '1.4', workflow: { tasks: [{ name: 'a', runtimeInSeconds: 1, parents: ['zz'], files: [] }] } }, /parent\.json: task "a" names an unknown parent "zz"/],
      ['cycle.json', { schemaVersion: '1.3', workflow: { jobs: [{ name: 'a', runtime: 1, parents: ['b'] }, { name: 'b', runtime: 1, parents: ['a'] }] } }, /cycle\.json: the parents form a cycle/]
    ]
    for (const [name, doc, message] of cases) {
      await writeFile(join(dir, name), JSON.stringify(doc))
      expect(() => importWfFormat(join(dir, name), join(dir, 'bad'), { timeScale: 0.01, sizeScale: 0.01 })).toThrow(message)
    }
    const r = await dflow(['import', 'wfformat', join(dir, 'v15.json'), '--out', join(dir, 'bad')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/v15\.json: schemaVersion "1\.5"/)
  })

  it('imports a 1,200-task trace with a deep chain and a task with 60 parents', async () => {
    const tasks: T[] = Array.from({ length: 1140 }, (_, i) => ({ name: `c${i}`, parents: i === 0 ? [] : [`c${i - 1}`], runtime: 1, in: i === 0 ? [] : [[`f${i - 1}`, 10]], out: [[`f${i}`, 10]] }))
    for (let i = 0; i < 59; i++) tasks.push({ name: `p${i}`, parents: [], runtime: 2, in: [], out: [[`q${i}`, 5]] })
    tasks.push({ name: 'wide', parents: [...Array.from({ length: 59 }, (_, i) => `p${i}`), 'c1139'], runtime: 1, in: Array.from({ length: 59 }, (_, i): [string, number] => [`q${i}`, 5]), out: [] })
    const file = join(dir, 'large.json')
    await writeFile(file, trace(tasks, '1.4'))
    const r = importWfFormat(file, join(dir, 'large'), { timeScale: 0.01, sizeScale: 0.01 })
    expect(r.summary).toMatchObject({ tasks: 1200, criticalPathMs: 1141 * 10, orderingEdges: 1 })
    const wf = await loadWorkflow(r.yaml)
    expect(Object.keys(wf.workflow.steps)).toHaveLength(1200)
    expect(Object.keys(wf.workflow.steps.wide.in)).toHaveLength(60)
  })

  describe('on a testnet', () => {
    let testnet: Awaited<ReturnType<typeof startTestnet>> | undefined
    let tdir: string
    beforeAll(async () => {
      tdir = await mkdtemp(join(tmpdir(), 'dflow-wfformat-net-'))
      testnet = await startTestnet({ peers: 2, dir: tdir })
    }, 120_000)
    afterAll(async () => {
      await testnet?.stop()
      await rm(tdir, { recursive: true, force: true })
    })

    it('an imported trace runs unchanged with dflow submit, both modes, one ok step per task', async () => {
      const file = join(dir, 'run.json')
      await writeFile(file, trace(mini, '1.4'))
      const out = join(dir, 'run-out')
      const imp = await dflow(['import', 'wfformat', file, '--out', out, '--time-scale', '0.01', '--size-scale', '0.1', '--name', 'mini-run'])
      expect(imp.code, imp.stderr).toBe(0)
      expect(imp.stdout).toContain(`tasks: ${mini.length} `)
      expect(imp.stdout).toMatch(/critical path: 13 ms/)
      for (const mode of ['dataflow', 'control']) {
        const r = await dflow(['submit', join(out, 'mini-run.yaml'), '--dir', tdir, '--peer', '1', '--mode', mode, '--json'])
        expect(r.code, r.stderr + r.stdout).toBe(0)
        const view = JSON.parse(r.stdout) as { status: string, steps: Array<{ name: string, status: string }> }
        expect(view.status).toBe('ok')
        expect(view.steps).toHaveLength(mini.length)
        expect(view.steps.every(s => s.status === 'ok')).toBe(true)
      }
    }, 180_000)
  })
})
