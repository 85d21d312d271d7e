/**
 * bench:micro section "shapes" (issue 10): the chain of 50 x 10 ms and the fan of 100 x 20 ms (source -> 100
 * parallel -> join), embedded (the `dflow run` engine, 16 slots) and on a 4-peer testnet (4 x 4 slots), median
 * totalMs over 8 requests after 2 warm-ups, with the per-step overhead above the floor, next to Dask distributed
 * (LocalCluster 4 workers x 4 threads, sleeping tasks) run on the same shapes in the same process tree.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSelfContained } from '../../../functions/benchmarks/generate.ts'
import type { Plan, PlanStep } from '../../../functions/benchmarks/plan.ts'
import { EmbeddedPeer } from '../../../node/engine/embedded.ts'
import { loadWorkflow } from '../../../node/workflow/index.ts'
import { startTestnet } from '../../index.ts'
import { runDaskYardstick } from '../dask/yardstick.ts'
import { lowerBoundMs, shapeFromPlan } from '../shape.ts'
import { percentile } from '../stats.ts'

const FACTORS = { timeScale: 1, sizeScale: 1, initMs: 0, postAt: 1 }
const SLOTS = 16
const step = (name: string, runtimeMs: number, reads: string[]): PlanStep => ({
  name,
  runtimeMs,
  in: { seed: 'inputs.seed', ...Object.fromEntries(reads.map(r => [`from_${r}`, `${r}.out`])) },
  outputs: { out: 8 },
  streams: {},
  constants: {},
  after: reads,
  runs: true
})

/** chain-50x10ms: s00 -> s01 -> ... -> s49, 10 ms each. */
export function chainPlan (n = 50, ms = 10): Plan {
  const name = (i: number): string => `s${String(i).padStart(2, '0')}`
  const steps = Array.from({ length: n }, (_, i) => step(name(i), ms, i === 0 ? [] : [name(i - 1)]))
  return { name: `chain-${n}x${ms}ms`, workflowName: `chain-${n}x${ms}ms`, steps, outputs: { result: `${name(n - 1)}.out` }, description: `bench:micro chain of ${n} steps of ${ms} ms`, source: 'testnet/bench/micro/shapes.ts' }
}

/** fan-100x20ms: source (0 ms) -> 100 parallel steps of 20 ms -> join (0 ms). */
export function fanPlan (n = 100, ms = 20): Plan {
  const mids = Array.from({ length: n }, (_, i) => step(`f${String(i).padStart(3, '0')}`, ms, ['source']))
  const steps = [step('source', 0, []), ...mids, step('join', 0, mids.map(s => s.name))]
  return { name: `fan-${n}x${ms}ms`, workflowName: `fan-${n}x${ms}ms`, steps, outputs: { result: 'join.out' }, description: `bench:micro fan: source -> ${n} parallel steps of ${ms} ms -> join`, source: 'testnet/bench/micro/shapes.ts' }
}

const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50)

export interface ShapeFigures { name: string, steps: number, floorMs: number, embeddedMs: number, testnetMs: number, daskMs: number | null }

/** Runs both shapes everywhere and prints one line each; answers the figures (for tests and docs). */
export async function shapesSection (opts: { warmup?: number, requests?: number, log?: (line: string) => void } = {}): Promise<ShapeFigures[]> {
  const warmup = opts.warmup ?? 2
  const requests = opts.requests ?? 8
  const log = opts.log ?? console.log
  const plans = [chainPlan(), fanPlan()]
  const dir = await mkdtemp(join(tmpdir(), 'dflow-micro-shapes-'))
  try {
    const files = plans.map(p => writeSelfContained(p, FACTORS, join(dir, 'wf')).yaml)
    const embedded: number[] = []
    const peer = await EmbeddedPeer.create({ slots: SLOTS })
    try {
      for (const file of files) {
        const workflow = await peer.loader.register(await loadWorkflow(file))
        const times: number[] = []
        for (let i = 0; i < warmup + requests; i++) {
          const id = await peer.scheduler.submit({ workflow, inputs: { seed: `e-${i}-${Date.now()}` } })
          await peer.scheduler.waitFinished(id)
          const view = await peer.scheduler.view(id)
          if (view?.status !== 'ok') throw new Error(`embedded ${file}: request ${id} ended ${view?.status ?? 'unknown'}`)
          if (i >= warmup && view.totalMs !== null) times.push(view.totalMs)
        }
        embedded.push(median(times))
      }
    } finally {
      await peer.stop()
    }
    const onTestnet: number[] = []
    const testnet = await startTestnet({ peers: 4, dir: join(dir, 'testnet') })
    try {
      const clients = await testnet.clients()
      for (const file of files) {
        const bytes = (await loadWorkflow(file)).bytes
        const cid = (await Promise.all(clients.map(async c => c.addWorkflow(bytes))))[0]
        const times: number[] = []
        for (let i = 0; i < warmup + requests; i++) {
          const c = clients[i % clients.length]
          const view = await c.wait(await c.submit({ workflow: cid, inputs: { seed: `t-${i}-${Date.now()}` } }), { pollMs: 10 })
          if (view.status !== 'ok') throw new Error(`testnet ${file}: request ${view.requestId} ended ${view.status}: ${view.error ?? ''}`)
          if (i >= warmup && view.totalMs !== null) times.push(view.totalMs)
        }
        onTestnet.push(median(times))
      }
    } finally {
      await testnet.stop()
    }
    const shapes = plans.map(shapeFromPlan)
    const dask = await runDaskYardstick(shapes, { warmup, requests })
    if (!dask.available) log(`   Dask column skipped: ${dask.reason}`)
    const out: ShapeFigures[] = plans.map((p, i) => ({
      name: p.name,
      steps: p.steps.length,
      floorMs: lowerBoundMs(shapes[i], SLOTS),
      embeddedMs: embedded[i],
      testnetMs: onTestnet[i],
      daskMs: dask.available ? dask.rows[i].p50Ms : null
    }))
    const f = (x: number): string => x.toFixed(0)
    const per = (x: number, s: ShapeFigures): string => ((x - s.floorMs) / s.steps).toFixed(1)
    log(`6. shapes, median of ${requests} after ${warmup} warm-ups (embedded: 1 peer x ${SLOTS} slots; testnet: 4 peers x 4 slots, totalMs; Dask ${dask.available ? dask.version : '-'}: LocalCluster 4 workers x 4 threads, processes)`)
    for (const s of out) {
      const dk = s.daskMs === null ? 'Dask -' : `Dask ${f(s.daskMs)} ms (${per(s.daskMs, s)} ms/step)  testnet/Dask ${(s.testnetMs / s.daskMs).toFixed(2)} (target <= 0.9)`
      log(`   ${s.name.padEnd(14)} floor ${f(s.floorMs)} ms  embedded ${f(s.embeddedMs)} ms (${per(s.embeddedMs, s)} ms/step)  testnet ${f(s.testnetMs)} ms (${per(s.testnetMs, s)} ms/step)  ${dk}`)
    }
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
