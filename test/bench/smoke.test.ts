/**
 * `dflow bench` end to end with tiny parameters: 2 peers, 2 workflows, 3 modes, 2 requests, tiny scales.
 * Checks the shape of what it produces (results, results.json, tables, README, chart specs), never timings.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runBench } from '../../testnet/bench/runner.ts'
import { renderText, tables, writeResultsJson } from '../../testnet/bench/report.ts'
import { chartSpecs, writeCharts } from '../../testnet/bench/charts.ts'
import { writeDocsReadme } from '../../testnet/bench/docs.ts'
import { parseBenchOptions, parseLinkRate } from '../../testnet/bench/options.ts'
import { percentile } from '../../testnet/bench/stats.ts'
import type { BenchResults, Sample } from '../../testnet/bench/types.ts'

const flags = {
  peers: '2', workflows: 'wordcount,example-matrix', modes: 'dataflow,control,central', requests: '2', warmup: '1', seed: '7',
  timeScale: '0.01', sizeScale: '0.001', initMs: '0', postAt: '1', slots: '2', replicas: '0', requestTimeout: '60000'
}

describe('dflow bench options', () => {
  it('parses flags, workflow lists and link rates', () => {
    const o = parseBenchOptions({ ...flags, postAt: '1,0.5', workflows: 'all+examples', linkRate: '50MB/s' })
    expect(o.workflows).toHaveLength(12)
    expect(o.postAt).toEqual([1, 0.5])
    expect(o.linkRate).toBe(50_000_000)
    expect(parseLinkRate('50MiB/s')).toBe(50 * 2 ** 20)
    expect(parseLinkRate('400mbit')).toBe(50_000_000)
    expect(() => parseBenchOptions({ ...flags, modes: 'dataflow,fast' })).toThrow(expect.objectContaining({ name: 'BenchUsageError' }))
    expect(() => parseBenchOptions({ ...flags, workflows: 'nope' })).toThrow(expect.objectContaining({ name: 'BenchUsageError' }))
    expect(() => parseLinkRate('fast')).toThrow(expect.objectContaining({ name: 'BenchUsageError' }))
  })

  it('takes exact nearest-rank percentiles', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1)
    expect(percentile(xs, 50)).toBe(10)
    expect(percentile(xs, 99)).toBe(20)
    expect(percentile([5], 99)).toBe(5)
  })
})

describe('dflow bench smoke', () => {
  const dirs: string[] = []
  afterAll(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

  it('runs 2 workflows x 3 modes x 2 requests on 2 peers and writes results, tables and README', async () => {
    const out = await mkdtemp(join(tmpdir(), 'dflow-bench-smoke-'))
    dirs.push(out)
    const samples: Sample[] = []
    const { results } = await runBench(parseBenchOptions(flags), () => {}, s => samples.push(s))
    expect(samples).toHaveLength(2 * 3 * 2)
    for (const s of samples) {
      expect(s.status, `${s.workflow} ${s.mode}: ${s.error ?? ''}`).toBe('ok')
      expect(s.latencyMs).toBeGreaterThan(0)
      expect(s.bytes).toBeGreaterThanOrEqual(0)
      expect(s.sharedBytes).toBeGreaterThanOrEqual(0)
      expect(s.steps.length).toBeGreaterThan(0)
    }
    // each request was submitted with its own id and modes alternate within a workflow
    expect(new Set(samples.map(s => s.requestId)).size).toBe(samples.length)
    expect(samples.slice(0, 3).map(s => s.mode).sort()).toEqual(['central', 'control', 'dataflow'])

    expect(results).toMatchObject({ peers: 2, slots: 2, timeScale: 0.01, sizeScale: 0.001, initMs: 0, loop: 'closed', sharedStore: true })
    expect(results.rows).toHaveLength(6)
    for (const r of results.rows) {
      expect(r.requests).toBe(2)
      expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms)
      expect(results.latencies[`${r.workflow}|${r.mode}|${r.postAt ?? '-'}`]).toHaveLength(2)
    }
    expect(results.rows.find(r => r.workflow === 'wordcount')?.criticalPathMs).toBeGreaterThan(0)
    expect(results.rows.find(r => r.workflow === 'example-matrix')).toMatchObject({ postAt: null, criticalPathMs: null, lowerBoundMs: null })
    // LB = max(critical path, total runtime / (2 peers x 2 slots)), never below the critical path
    const wc = results.rows.find(r => r.workflow === 'wordcount')!
    expect(wc.lowerBoundMs).toBeGreaterThanOrEqual(wc.criticalPathMs!)
    expect(wc.overLowerBound).toBeCloseTo(wc.p50Ms / wc.lowerBoundMs!, 1)

    const file = await writeResultsJson(results, out)
    const json = JSON.parse(await readFile(file, 'utf8')) as BenchResults
    expect(Object.keys(json).slice(0, 9)).toEqual(['machine', 'date', 'commit', 'peers', 'slots', 'timeScale', 'sizeScale', 'initMs', 'rows'])
    for (const row of json.rows) {
      for (const k of ['workflow', 'mode', 'postAt', 'requests', 'p50Ms', 'p99Ms', 'bytes', 'sharedBytes', 'coldStartMs', 'criticalPathMs', 'lowerBoundMs']) expect(row).toHaveProperty(k)
    }

    const t = tables(results)
    expect(t.map(x => x.title.split(':')[0])).toEqual(['postAt 1', 'postAt 1', 'example workflows (post at return)', 'example workflows (post at return)'])
    expect(t[0].header).toContain('p50/LB')
    expect(t[1].header).toEqual(['workflow', 'p50 df/ctl', 'p50 df/cen', 'p99 df/ctl', 'p99 df/cen', 'bytes df/ctl', 'bytes df/cen', 'cold df/ctl', 'cold df/cen', 'LB df/ctl', 'LB df/cen'])
    // at postAt 1 on wordcount the dataflow LB is control's (no foreach element ends a path early there)
    expect(t[1].rows.find(r => r[0] === 'wordcount')?.slice(-2)).toEqual(['1.00', '1.00'])
    expect(renderText(results)).toContain('timeScale 0.01, sizeScale 0.001')

    const specs = chartSpecs(results)
    expect(Object.keys(specs).sort()).toEqual(['bytes.svg', 'cdf.svg', 'coldstart.svg', 'latency.svg'])
    let charts: string[] = []
    try {
      charts = await writeCharts(results, out)
      for (const c of charts) expect(await readFile(join(out, c), 'utf8')).toMatch(/^<svg/)
    } catch (err) {
      // the chart library is optional at run time; anything else is a bug
      expect((err as Error).name).toBe('ChartLibraryMissingError')
    }
    const readme = await readFile(await writeDocsReadme(results, out, charts, 'dflow bench (smoke)'), 'utf8')
    expect(readme).toContain('| wordcount | dataflow |')
    expect(readme).toContain(`commit: ${results.commit}`)
    expect(readme).toContain('<!-- notes:end -->')
  }, 120_000)
})
