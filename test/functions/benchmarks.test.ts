import { describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import { generate } from '../../functions/benchmarks/generate.ts'
import { BENCHMARK_NAMES, DEFAULT_FACTORS, benchmarkWorkflows, criticalPathMs, exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { runWorkflow } from './mini-runner.ts'

// the function counts of the reference README's table
const STEPS: Record<string, number> = {
  cycles: 46, epigenomics: 45, genome: 50, soykb: 45, video: 6, illgal_recognizer: 10, wordcount: 3, fileprocessing: 4
}

describe('benchmark generator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dflow-bench-gen-'))
  const tiny = mkdtempSync(join(tmpdir(), 'dflow-bench-tiny-'))
  const written = generate({ ...DEFAULT_FACTORS }, dir)
  generate({ timeScale: 0.001, sizeScale: 0.001, initMs: 0, postAt: 0.5 }, tiny)

  it('writes 8 workflows whose YAML parses, with one step per reference function', () => {
    expect(written.map(w => w.name)).toEqual([...BENCHMARK_NAMES])
    for (const w of written) {
      const doc = parse(readFileSync(w.yaml, 'utf8')) as { name: string, steps: Record<string, unknown>, inputs: string[] }
      expect(Object.keys(doc.steps), w.name).toHaveLength(STEPS[w.name])
      expect(doc.name).toMatch(/^[a-z0-9-]+$/)
      expect(doc.inputs).toEqual(['seed'])
      expect(readFileSync(w.yaml, 'utf8')).toContain('timeScale 0.05')
    }
  })

  it('the committed files are the ones the generator writes at the default factors', () => {
    for (const w of written) {
      const committed = benchmarkWorkflows.find(b => b.name === w.name)
      expect(committed).toBeDefined()
      expect(readFileSync(committed!.path, 'utf8'), w.name).toBe(readFileSync(w.yaml, 'utf8'))
      // the import of the synthetic function is relative to where the module was written
      const body = (file: string): string => readFileSync(file, 'utf8').replace(/from '[^']*synthetic\.ts'/, "from 'synthetic.ts'")
      expect(body(committed!.path.replace('workflow.yaml', `${w.name}.js`))).toBe(body(w.module))
      expect(committed!.steps).toBe(STEPS[w.name])
    }
  })

  it('maps foreach, switch and parallel as documented', () => {
    const read = (n: string): any => parse(readFileSync(join(dir, n, 'workflow.yaml'), 'utf8'))
    const video = read('video')
    expect(video.steps.transcode.foreach).toBe('split.content')
    expect(video.steps.transcode.in.item).toBe('$item')
    expect(video.steps.split.when).toEqual({ ref: 'virtual1.branch', equals: 'split' })
    expect(video.steps.simple_process.when).toEqual({ ref: 'virtual1.branch', equals: 'simple_process' })
    const rec = read('illgal_recognizer')
    expect(rec.steps.mosaic.when).toEqual({ ref: 'virtual2.branch', equals: 'mosaic' })
    expect(rec.steps.virtual2.in.word_censor_filter_count).toEqual({ oneOf: ['word_censor.filter_count', 'virtual1.branch'] })
    expect(rec.outputs.result).toEqual({ oneOf: ['mosaic.mosaic_name', 'end.done'] })
    const fp = read('fileprocessing')
    expect(fp.steps.conversion.in.file).toBe('start.file')
    expect(fp.steps.sentiment.in.file).toBe('start.file')
    expect(read('wordcount').steps.count.foreach).toBe('start.file')
  })

  it('runs every generated workflow (tiny factors): refs resolve, declared outputs are produced, branches as chosen', async () => {
    for (const name of BENCHMARK_NAMES) {
      const r = await runWorkflow(join(tiny, name, 'workflow.yaml'), { seed: 1 })
      const skipped = Object.entries(r.status).filter(([, s]) => s === 'skipped').map(([n]) => n)
      expect(skipped, name).toEqual(name === 'video' ? ['simple_process'] : name === 'illgal_recognizer' ? ['end'] : [])
      if (name === 'video') expect((r.outputs.result as Uint8Array).length).toBe(Math.round(22663904 * 0.001))
      if (name === 'wordcount') expect((r.outputs.merge_result as Uint8Array).length).toBe(325)
    }
  }, 120_000)

  it('computes critical paths from the facts', () => {
    expect(criticalPathMs('cycles', 1)).toBe(4000)
    expect(criticalPathMs('epigenomics', 1)).toBe(9000)
    expect(criticalPathMs('genome', 1)).toBe(3000)
    expect(criticalPathMs('soykb', 1)).toBe(11000)
    expect(criticalPathMs('illgal_recognizer', 1)).toBe(28830) // README: 28.8 s
    expect(criticalPathMs('video', 1)).toBe(3800 + 1000 + 630 + 1740 + 280)
    expect(criticalPathMs('wordcount', 1)).toBe(20 + 120 + 50)
    expect(criticalPathMs('fileprocessing', 1)).toBe(90 + 19050 + 1000)
    expect(criticalPathMs('cycles')).toBe(200)
    expect(() => criticalPathMs('nope')).toThrow(expect.objectContaining({ name: 'UnknownWorkflowError' }))
  })

  it('cleans up', () => {
    rmSync(dir, { recursive: true, force: true })
    rmSync(tiny, { recursive: true, force: true })
  })
})

describe('example workflows (run through their YAML with a fake context)', () => {
  for (const ex of exampleWorkflows) {
    it(`${ex.name} gives the expected result`, async () => {
      const r = await runWorkflow(ex.path, ex.inputs as never)
      expect(r.outputs).toMatchObject(ex.expect)
    })
  }

  it('recognizer: the clean branch runs pass, skips censor, and its outputs are null', async () => {
    const ex = exampleWorkflows.find(e => e.name === 'recognizer')!
    const r = await runWorkflow(ex.path, { text: 'a quiet afternoon' })
    expect(r.status.censor).toBe('skipped')
    expect(r.status.pass).toBe('ok')
    expect(r.outputs).toMatchObject({ label: 'clean', text: 'a quiet afternoon', censored: null })
    expect(r.outputs.report).toEqual({ label: 'clean', score: 0, text: 'a quiet afternoon', length: 17 })
  })
})
