/**
 * The bench's shapes, lower bounds and Dask yardstick, and the flags that reach them. The Dask run is skipped
 * (saying so) where no python has `distributed`; its assertion is a bound sleeping tasks cannot beat, not a speed.
 */
import { describe, expect, it } from 'vitest'
import { buildPlan } from '../../functions/benchmarks/plan.ts'
import { DEFAULT_FACTORS, criticalPathMs, loadFacts } from '../../functions/benchmarks/index.ts'
import { chainPlan, fanPlan } from '../../testnet/bench/micro/shapes.ts'
import { findDaskPython, runDaskYardstick } from '../../testnet/bench/dask/yardstick.ts'
import { lowerBoundMs, shapeCriticalPathMs, shapeFromPlan, shapeTotalRuntimeMs } from '../../testnet/bench/shape.ts'
import { Command } from 'commander'
import { parseBenchOptions, peerFlags, type BenchCliFlags } from '../../testnet/bench/options.ts'
import { registerBenchCommand } from '../../node/cli/bench.ts'

const flags = {
  peers: '4', workflows: 'genome', modes: 'dataflow,control', requests: '2', warmup: '1', seed: '1',
  timeScale: '0.05', sizeScale: '0.01', initMs: '0', postAt: '1', slots: '4', replicas: '0', requestTimeout: '60000'
}

describe('bench shapes and lower bounds', () => {
  it('chain and fan: critical path, total runtime, LB = max(cp, total / slots)', () => {
    const chain = shapeFromPlan(chainPlan())
    expect(chain.tasks).toHaveLength(50)
    expect(shapeCriticalPathMs(chain)).toBe(500)
    expect(lowerBoundMs(chain, 16)).toBe(500)
    const fan = shapeFromPlan(fanPlan())
    expect(fan.tasks).toHaveLength(102)
    expect(fan.tasks.find(t => t.name === 'join')!.after).toHaveLength(100)
    expect(shapeCriticalPathMs(fan)).toBe(20)
    expect(shapeTotalRuntimeMs(fan)).toBe(2000)
    expect(lowerBoundMs(fan, 16)).toBe(125)
  })

  it('dataflow bound: consumers start on posted outputs (postAt of the producer\'s runtime), foreach instances on their element', () => {
    const chain = shapeFromPlan(chainPlan())
    // step i starts at 5 i ms: the last (i = 49) ends at 245 + 10
    expect(shapeCriticalPathMs(chain, 0.5)).toBe(255)
    expect(shapeCriticalPathMs(chain, 1)).toBe(500)
    expect(lowerBoundMs(chain, 16, 0.5)).toBe(255)
    // no slot bound is lifted by posting early
    expect(lowerBoundMs(shapeFromPlan(fanPlan()), 16, 0.5)).toBe(125)
    // video's transcode is a foreach over split's stream: element i of 3 is out at (i + 1) / 3 of split's post time
    // (merge waits for the last, so at postAt 1 the path is control's)
    const video = shapeFromPlan(buildPlan(loadFacts().workflows.video, DEFAULT_FACTORS))
    const transcode = video.tasks.filter(t => t.name.startsWith('transcode['))
    expect(transcode.map(t => t.element?.index)).toEqual([0, 1, 2])
    expect(transcode.every(t => t.element?.count === 3 && t.element.task === 'split')).toBe(true)
    expect(shapeCriticalPathMs(video, 1)).toBe(shapeCriticalPathMs(video))
    expect(shapeCriticalPathMs(video, 0.5)).toBeLessThan(shapeCriticalPathMs(video, 1))
    // a DAG without foreach: postAt 1 is the control-flow path
    const epi = shapeFromPlan(buildPlan(loadFacts().workflows.epigenomics, DEFAULT_FACTORS))
    expect(epi.tasks.some(t => t.element !== undefined)).toBe(false)
    expect(shapeCriticalPathMs(epi, 1)).toBe(shapeCriticalPathMs(epi))
  })

  it('a FaaSFlow plan: foreach becomes one task per element, skipped branches are left out, cp as the generator says', () => {
    for (const name of ['video', 'illgal_recognizer', 'cycles']) {
      const plan = buildPlan(loadFacts().workflows[name], DEFAULT_FACTORS)
      const shape = shapeFromPlan(plan)
      expect(shapeCriticalPathMs(shape), name).toBe(criticalPathMs(name))
      const running = plan.steps.filter(s => s.runs)
      const foreach = running.filter(s => s.foreach !== undefined)
      expect(shape.tasks.length, name).toBeGreaterThanOrEqual(running.length)
      for (const s of foreach) expect(shape.tasks.filter(t => t.name.startsWith(`${s.name}[`)).length).toBeGreaterThan(1)
      for (const s of plan.steps.filter(s => !s.runs)) expect(shape.tasks.some(t => t.name === s.name)).toBe(false)
    }
  })
})

describe('bench flags', () => {
  it('--idle-instance and --yardstick are checked and kept', () => {
    expect(parseBenchOptions({ ...flags, idleInstance: '2s', yardstick: 'dask' })).toMatchObject({ idleInstance: '2s', yardstick: 'dask' })
    expect(() => parseBenchOptions({ ...flags, idleInstance: 'soon' })).toThrow(expect.objectContaining({ name: 'BenchUsageError', message: expect.stringContaining('--idle-instance') }))
    expect(() => parseBenchOptions({ ...flags, yardstick: 'ray' })).toThrow(expect.objectContaining({ name: 'BenchUsageError', message: expect.stringContaining('--yardstick') }))
    expect(() => parseBenchOptions({ ...flags, workflows: '/nonexistent/trace.json' })).toThrow(expect.objectContaining({ name: 'BenchUsageError', message: expect.stringContaining('not found') }))
  })
})

describe('bench --no-shared-store', () => {
  const benchFlags = (argv: string[]): Record<string, unknown> => {
    const program = new Command()
    registerBenchCommand(program)
    const bench = program.commands.find(c => c.name() === 'bench')!
    bench.parseOptions(argv)
    return bench.opts()
  }

  it('is off by default and reaches every peer as dflow peer --no-shared-store when given', () => {
    const given = benchFlags(['--no-shared-store', '--idle-instance', '2s'])
    expect(given.sharedStore).toBe(false)
    const opts = parseBenchOptions({ ...flags, ...given } as unknown as BenchCliFlags)
    expect(opts.sharedStore).toBe(false)
    expect(peerFlags(opts)).toEqual(['--idle-instance', '2s', '--no-shared-store'])
    const plain = parseBenchOptions({ ...flags, ...benchFlags([]) } as unknown as BenchCliFlags)
    expect(plain.sharedStore).toBeUndefined()
    expect(peerFlags(plain)).toEqual([])
  })
})

describe('Dask yardstick', () => {
  it('without a python that has distributed it says so and gives no figures', async () => {
    const r = await runDaskYardstick([shapeFromPlan(chainPlan(3, 10))], { warmup: 0, requests: 1, pythons: ['/nonexistent/python3'] })
    expect(r.available).toBe(false)
    if (!r.available) expect(r.reason).toMatch(/no python with Dask distributed \(tried \/nonexistent\/python3\)/)
  })

  const dask = findDaskPython()
  it.skipIf(dask.python === null)('runs a chain of 3 x 50 ms: one latency per request, none below the 150 ms of sleeps', async () => {
    const r = await runDaskYardstick([shapeFromPlan(chainPlan(3, 50))], { warmup: 1, requests: 3 })
    expect(r.available).toBe(true)
    if (!r.available) return
    expect(r).toMatchObject({ engine: 'dask', workers: 4, threads: 4 })
    expect(r.rows).toHaveLength(1)
    expect(r.rows[0].latenciesMs).toHaveLength(3)
    for (const ms of r.rows[0].latenciesMs) expect(ms).toBeGreaterThanOrEqual(150)
  }, 300_000)
})
