/**
 * `dflow bench --modules`: the benchmark workflows with all steps in one module (per-workflow, the default) or one
 * module per step (per-step, one function per container). The steps must behave the same either way.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { generate, moduleFiles } from '../../functions/benchmarks/generate.ts'
import { DEFAULT_FACTORS, loadFacts } from '../../functions/benchmarks/index.ts'
import { buildPlan } from '../../functions/benchmarks/plan.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { parseBenchOptions } from '../../testnet/bench/options.ts'
import { prepareJobs } from '../../testnet/bench/workflows.ts'

const flags = {
  peers: '2', workflows: 'video', modes: 'dataflow,control', requests: '2', warmup: '1', seed: '7',
  timeScale: '0.05', sizeScale: '0.01', initMs: '500', postAt: '1', slots: '2', replicas: '0', requestTimeout: '60000'
}

/** The `export const ...` lines of a module's code. */
const exportsOf = (code: string): string[] => code.split('\n').filter(l => l.startsWith('export const '))

describe('benchmark generator: module layouts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dflow-bench-modules-'))
  afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
  const factors = { ...DEFAULT_FACTORS, initMs: 500 }

  it('per-step: one module per step, each holding that step\'s export exactly as the per-workflow module does', () => {
    for (const name of ['video', 'epigenomics', 'soykb']) {
      const plan = buildPlan(loadFacts().workflows[name], factors)
      const [whole] = [...moduleFiles(plan, factors, 'per-workflow').values()]
      const perStep = moduleFiles(plan, factors, 'per-step')
      expect([...perStep.keys()]).toEqual(plan.steps.map(s => `${s.name}.js`))
      const lines: string[] = []
      for (const [file, code] of perStep) {
        const ex = exportsOf(code)
        expect(ex, file).toHaveLength(1)
        expect(ex[0]).toMatch(new RegExp(`^export const ${file.replace(/\.js$/, '')} = synthetic\\(`))
        // every instance of every module pays the start cost at load
        expect(code).toContain('await initWait(500)')
        lines.push(...ex)
      }
      expect(lines).toEqual(exportsOf(whole))
    }
  })

  it('generate: per-step YAML runs ./<step>.js#<step>, otherwise the same workflow; per-workflow is unchanged', () => {
    const one = generate(factors, join(dir, 'one'))
    const per = generate(factors, join(dir, 'per'), 'per-step')
    for (const name of ['video', 'soykb']) {
      const a = parse(readFileSync(one.find(w => w.name === name)!.yaml, 'utf8')) as { steps: Record<string, { run: string }> }
      const b = parse(readFileSync(per.find(w => w.name === name)!.yaml, 'utf8')) as { steps: Record<string, { run: string }> }
      for (const [step, def] of Object.entries(a.steps)) {
        expect(def.run).toBe(`./${name}.js#${step}`)
        expect(b.steps[step].run).toBe(`./${step}.js#${step}`)
        expect({ ...b.steps[step], run: def.run }).toEqual(def)
      }
      const w = per.find(x => x.name === name)!
      expect(w.modules).toHaveLength(Object.keys(a.steps).length)
      for (const m of w.modules) expect(existsSync(m)).toBe(true)
      expect(one.find(x => x.name === name)!.modules).toHaveLength(1)
    }
  })

  it('a per-step workflow loads and bundles into one module per step', async () => {
    const per = generate({ ...factors, initMs: 0 }, join(dir, 'bundle'), 'per-step')
    const video = await loadWorkflow(per.find(w => w.name === 'video')!.yaml)
    expect(Object.keys(video.bundle.modules).sort()).toEqual(Object.keys(video.workflow.steps).map(s => `./${s}.js`).sort())
    // distinct code per step, so distinct instances in a peer's pool
    expect(new Set(Object.values(video.bundle.modules).map(m => m.cid)).size).toBe(6)
  })
})

describe('dflow bench --modules', () => {
  it('parses the layouts (default per-workflow) and refuses unknown ones', () => {
    expect(parseBenchOptions(flags).modules).toEqual(['per-workflow'])
    expect(parseBenchOptions({ ...flags, modules: 'per-step' }).modules).toEqual(['per-step'])
    expect(parseBenchOptions({ ...flags, modules: 'per-workflow,per-step' }).modules).toEqual(['per-workflow', 'per-step'])
    expect(() => parseBenchOptions({ ...flags, modules: 'per-function' })).toThrow(expect.objectContaining({ name: 'BenchUsageError' }))
  })

  it('makes one job per workflow and layout; per-step jobs are named <name>/per-step and run per-step files', () => {
    const { jobs, generatedDir } = prepareJobs(parseBenchOptions({ ...flags, workflows: 'video,soykb', modules: 'per-workflow,per-step' }))
    try {
      expect(jobs.map(j => j.workflow)).toEqual(['video', 'soykb', 'video/per-step', 'soykb/per-step'])
      const video = jobs.find(j => j.workflow === 'video/per-step')!
      expect(existsSync(join(dirname(video.path), 'transcode.js'))).toBe(true)
      expect(readFileSync(video.path, 'utf8')).toContain('run: ./transcode.js#transcode')
      expect(readFileSync(jobs[0].path, 'utf8')).toContain('run: ./video.js#transcode')
      // same shape and critical path: only the modules differ
      expect(video.criticalPathMs).toBe(jobs[0].criticalPathMs)
      expect(video.shape).toEqual(jobs[0].shape)
    } finally {
      if (generatedDir !== undefined) rmSync(generatedDir, { recursive: true, force: true })
    }
  })
})
