/**
 * How long a burst of instance starts takes on this machine, on the executor alone (no network, no scheduler):
 * N distinct modules (one per step, as `dflow bench --modules per-step` makes them), each waiting 500 ms at load
 * (`--init-ms 500`: a wait, not CPU), pre-warmed at once as dataflow does at request start. Prints, per N, when
 * the first and the last instance were ready (ms after the burst began). docs/benchmarks/coldstart.md.
 *   npx tsx testnet/bench/micro/boot-burst.ts [N...]   (default 1 3 8 16 45; process isolation)
 */
import { performance } from 'node:perf_hooks'
import { WorkerPool } from '../../../node/executor/pool.ts'
import type { InstanceSpec } from '../../../node/executor/types.ts'

let unique = 0
function spec (): InstanceSpec {
  const code = `await new Promise(resolve => setTimeout(resolve, 500))\nexport default async () => ({}) // ${process.pid}-${++unique}-${Date.now()}`
  return { code: { cid: `boot-burst-${process.pid}-${unique}`, code }, memoryMb: 128 }
}

async function burst (n: number): Promise<{ first: number, last: number }> {
  const pool = new WorkerPool({ slots: 4, isolation: 'process', idleMs: 60_000 })
  try {
    const t0 = performance.now()
    const at = await Promise.all(Array.from({ length: n }, async () => { await pool.prewarm(spec(), 1); return performance.now() - t0 }))
    return { first: Math.min(...at), last: Math.max(...at) }
  } finally {
    await pool.stop()
  }
}

const sizes = process.argv.slice(2).map(Number).filter(n => n > 0)
for (const n of sizes.length > 0 ? sizes : [1, 3, 8, 16, 45]) {
  const { first, last } = await burst(n)
  console.log(`${n} instances at once: first ready ${first.toFixed(0)} ms, all ready ${last.toFixed(0)} ms`)
}
