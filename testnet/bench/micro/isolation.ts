/**
 * bench:micro section "isolation" (issue 12): what process isolation (a child process under Node's permission
 * model) costs against worker threads, on the executor alone (no network, no scheduler):
 *   - cold start: invoke of a module no instance has loaded yet (start + load + call), p50/p99
 *   - warm start: invoke of a trivial function on an idle instance (the host <-> instance round trip), p50/p99
 *   - pre-warm: the scheduler pre-warms an instance as soon as it wins a claim, while the inputs are still being
 *     produced: how long the pre-warm takes (the lead the data must leave it), and the invoke once it is ready
 *   - resident memory of one idle instance
 *   - requests per second of a trivial 3-step chain on an embedded peer (one at a time)
 * Env: N (samples per figure, default 30).
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EmbeddedPeer } from '../../../node/engine/embedded.ts'
import { WorkerPool } from '../../../node/executor/pool.ts'
import { ISOLATIONS, type Isolation } from '../../../node/executor/channels.ts'
import { rssBytes } from '../../../node/executor/sandbox.ts'
import type { InstanceSpec, InvokeOptions } from '../../../node/executor/types.ts'
import { loadWorkflow } from '../../../node/workflow/index.ts'
import { percentile } from '../stats.ts'

const here = fileURLToPath(new URL('.', import.meta.url))

let unique = 0
/** a module no instance has loaded: new code, so a new cid and a new file in the code cache */
function freshSpec (): InstanceSpec {
  const code = `export default async (ctx) => ({ v: (await ctx.input('n')) + 1 }) // ${process.pid}-${++unique}-${Date.now()}`
  return { code: { cid: `bench-iso-${process.pid}-${unique}`, code }, memoryMb: 128 }
}

function invokeOpts (spec: InstanceSpec): InvokeOptions {
  return {
    spec,
    exportName: 'default',
    request: { id: 'bench', workflow: 'bench' },
    step: { name: 'bench', index: null },
    outputs: ['v'],
    timeoutMs: 60_000,
    input: async () => 1,
    onOutput: () => {},
    onEmit: () => {},
    onLog: () => {}
  }
}

async function timed (pool: WorkerPool, spec: InstanceSpec): Promise<number> {
  const t0 = performance.now()
  await pool.invoke(invokeOpts(spec))
  return performance.now() - t0
}

interface Figures {
  cold: number[]
  warm: number[]
  /** how long a pre-warm takes to have the instance ready */
  lead: number[]
  /** invoke latency once the pre-warmed instance is ready */
  prewarmed: number[]
  rssMb: number | null
  chainPerSec: number
}

/**
 * Samples alternate between the isolations (one of each per round), so that a busy machine's load, which comes and
 * goes, weighs on both alike.
 */
async function measure (n: number): Promise<Map<Isolation, Figures>> {
  const pools = new Map(ISOLATIONS.map(iso => [iso, new WorkerPool({ isolation: iso, slots: 4, idleMs: 600_000, maxIdleInstances: 4 })]))
  const out = new Map<Isolation, Figures>(ISOLATIONS.map(iso => [iso, { cold: [], warm: [], lead: [], prewarmed: [], rssMb: null, chainPerSec: 0 }]))
  const each = async (fn: (pool: WorkerPool, f: Figures, iso: Isolation) => Promise<void>): Promise<void> => {
    for (const [iso, pool] of pools) await fn(pool, out.get(iso) as Figures, iso)
  }
  try {
    // the first start of all pays for loading the executor's own files
    await each(async pool => { await timed(pool, freshSpec()) })
    for (let i = 0; i < n; i++) await each(async (pool, f) => { f.cold.push(await timed(pool, freshSpec())) })
    const warmSpec = freshSpec()
    await each(async pool => { await timed(pool, warmSpec) })
    for (let i = 0; i < n * 5; i++) await each(async (pool, f) => { f.warm.push(await timed(pool, warmSpec)) })
    for (let i = 0; i < n; i++) {
      await each(async (pool, f) => {
        const spec = freshSpec()
        const t0 = performance.now()
        await pool.prewarm(spec)
        f.lead.push(performance.now() - t0)
        f.prewarmed.push(await timed(pool, spec))
      })
    }
    await each(async (pool, f) => {
      const rss = pool.pids().map(rssBytes).filter((r): r is number => r !== undefined)
      f.rssMb = rss.length === 0 ? null : rss.reduce((a, b) => a + b, 0) / rss.length / 2 ** 20
    })
  } finally {
    for (const pool of pools.values()) await pool.stop()
  }
  const rates = await chainRates(n * 3)
  for (const [iso, f] of out) f.chainPerSec = rates.get(iso) ?? 0
  return out
}

/** Requests per second of the trivial chain on an embedded peer per isolation, in alternating batches of 10. */
async function chainRates (runs: number): Promise<Map<Isolation, number>> {
  const peers = new Map<Isolation, EmbeddedPeer>()
  const spent = new Map<Isolation, number>(ISOLATIONS.map(iso => [iso, 0]))
  try {
    for (const iso of ISOLATIONS) peers.set(iso, await EmbeddedPeer.create({ slots: 4, isolation: iso }))
    const file = await loadWorkflow(join(here, 'trivial.yaml'))
    const workflows = new Map<Isolation, string>()
    for (const [iso, peer] of peers) workflows.set(iso, await peer.loader.register(file))
    const run = async (iso: Isolation, seed: number): Promise<void> => {
      const peer = peers.get(iso) as EmbeddedPeer
      await peer.scheduler.waitFinished(await peer.scheduler.submit({ workflow: workflows.get(iso) as string, inputs: { seed } }))
    }
    for (const iso of ISOLATIONS) for (let i = 0; i < 3; i++) await run(iso, -i - 1)
    for (let done = 0; done < runs; done += 10) {
      for (const iso of ISOLATIONS) {
        const t0 = performance.now()
        for (let i = done; i < done + 10; i++) await run(iso, i)
        spent.set(iso, (spent.get(iso) ?? 0) + performance.now() - t0)
      }
    }
  } finally {
    for (const peer of peers.values()) await peer.stop()
  }
  return new Map(ISOLATIONS.map(iso => [iso, Math.ceil(runs / 10) * 10 / ((spent.get(iso) ?? 1) / 1000)]))
}

const p = (xs: number[], q: number): string => percentile([...xs].sort((a, b) => a - b), q).toFixed(1)

export async function isolationSection (n = Number(process.env.N ?? 30)): Promise<void> {
  const all = await measure(n)
  console.log(`7. process vs thread isolation, executor alone (ms, p50/p99; n=${n}, warm n=${n * 5}):`)
  for (const [iso, f] of all) {
    console.log(`   ${iso.padEnd(7)} cold start ${p(f.cold, 50)}/${p(f.cold, 99)}  warm ${p(f.warm, 50)}/${p(f.warm, 99)}  ` +
      `pre-warm ${p(f.lead, 50)}/${p(f.lead, 99)}, invoke after it ${p(f.prewarmed, 50)}/${p(f.prewarmed, 99)}  idle instance RSS ${f.rssMb === null ? 'n/a (shared with the peer)' : `${f.rssMb.toFixed(0)} MiB`}  ` +
      `3-step chain ${f.chainPerSec.toFixed(0)} requests/s`)
  }
  const proc = all.get('process')
  const thread = all.get('thread')
  if (proc !== undefined && thread !== undefined) {
    const med = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50)
    const coldGap = med(proc.cold) - med(thread.cold)
    const warmGap = med(proc.prewarmed) - med(thread.prewarmed)
    const hidden = Math.abs(warmGap) < Math.max(1, 0.2 * Math.abs(coldGap))
    console.log(`   process costs ${coldGap.toFixed(1)} ms more per cold start; once pre-warmed the gap is ${warmGap.toFixed(1)} ms: ` +
      (hidden
        ? `pre-warming hides the difference whenever a step's inputs take longer than the pre-warm (p50 ${med(proc.lead).toFixed(0)} ms) to arrive`
        : 'pre-warming does NOT hide the difference'))
  }
}
