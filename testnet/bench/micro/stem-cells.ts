/**
 * What stem cells save a burst of cold starts, on the executor alone (no network, no scheduler): rounds of N
 * distinct modules (one per step, as `dflow bench --modules per-step` makes them), each waiting 500 ms at load,
 * pre-warmed at once as dataflow does at request start, with a pause between rounds for the cells to refill.
 * Round 0 finds no cell (the pool has not seen the memory size yet, nor the burst); later rounds start in cells.
 * Prints when the first and the last instance of each round were ready. docs/benchmarks/coldstart.md.
 *   npx tsx testnet/bench/micro/stem-cells.ts [N] [CELLS]   (default 11 4; process isolation)
 */
import { performance } from 'node:perf_hooks'
import { WorkerPool } from '../../../node/executor/pool.ts'
import type { InstanceSpec } from '../../../node/executor/types.ts'

let unique = 0
function spec (): InstanceSpec {
  const code = `await new Promise(resolve => setTimeout(resolve, 500))\nexport default async () => ({}) // ${process.pid}-${++unique}-${Date.now()}`
  return { code: { cid: `stem-cells-${process.pid}-${unique}`, code }, memoryMb: 128 }
}

const n = Number(process.argv[2] ?? 11)
const cells = Number(process.argv[3] ?? 4)
const pool = new WorkerPool({ slots: 4, isolation: 'process', idleMs: 2000, stemCells: cells })
try {
  for (let round = 0; round < 4; round++) {
    const t0 = performance.now()
    const at = await Promise.all(Array.from({ length: n }, async () => { await pool.prewarm(spec(), 1); return performance.now() - t0 }))
    const s = pool.stats()
    console.log(`round ${round}: ${n} at once, first ready ${Math.min(...at).toFixed(0)} ms, all ready ${Math.max(...at).toFixed(0)} ms; started in cells so far ${s.stemCellStarts}`)
    // the cells refill once nothing loads, one at a time
    await new Promise(resolve => setTimeout(resolve, 5000))
  }
} finally {
  await pool.stop()
}
