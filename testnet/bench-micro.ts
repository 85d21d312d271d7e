/**
 * `npm run bench:micro`: the runtime's small costs, one figure each. A benchmark, not a test: it prints and
 * asserts nothing.
 *   1. output posted -> consumer running, on another peer and on the producer's (4-peer testnet, dataflow and control), p50/p99
 *   2. gossip event latency between two in-process libp2p nodes, publish -> receive, p50/p99
 *   3. DStore fetch throughput vs a raw libp2p stream (runs testnet/bench-store.ts)
 *   4. step executions per second on one embedded peer, trivial 3-step chain (sequential and 4 at a time)
 *   5. readiness events published per request, on 4 and 8 peers
 *   6. chain of 50 x 10 ms and fan of 100 x 20 ms: embedded, 4-peer testnet and Dask side by side
 *      (testnet/bench/micro/shapes.ts; the Dask column needs python3-distributed, else it says why it is skipped)
 *   7. process vs thread isolation: cold start, warm start, after a pre-warm (testnet/bench/micro/isolation.ts)
 * New sections live in testnet/bench/micro/<section>.ts and get one entry in `figures` below.
 * Env: N (requests per figure, default 30), SKIP (comma list of figure numbers to skip).
 */
import './../node/util/polyfill.ts'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { DflowClient } from '../node/client.ts'
import { authHeaderFor } from './clients.ts'
import { EmbeddedPeer } from '../node/engine/embedded.ts'
import { createDflowLibp2p } from '../node/network/libp2p.ts'
import { loadWorkflow } from '../node/workflow/index.ts'
import { exampleWorkflows } from '../functions/benchmarks/index.ts'
import { startTestnet } from './index.ts'
import { percentile } from './bench/stats.ts'
import { shapesSection } from './bench/micro/shapes.ts'
import { isolationSection } from './bench/micro/isolation.ts'

const here = dirname(fileURLToPath(import.meta.url))
const N = Number(process.env.N ?? 30)
const SKIP = new Set((process.env.SKIP ?? '').split(',').filter(s => s !== ''))
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const fmt = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b)
  return `p50 ${percentile(s, 50).toFixed(1)} ms  p99 ${percentile(s, 99).toFixed(1)} ms  (n=${s.length})`
}

async function withTestnet<T> (peers: number, fn: (clients: DflowClient[]) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'dflow-micro-'))
  const testnet = await startTestnet({ peers, dir })
  try {
    return await fn(await testnet.clients())
  } finally {
    await testnet.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** 1: producer logs its post time, consumer logs its start; only pairs on different peers count. */
async function postToConsumer (): Promise<void> {
  const file = await loadWorkflow(join(here, 'bench/micro/postwait.yaml'))
  await withTestnet(4, async clients => {
    await Promise.all(clients.map(async c => c.addWorkflow(file.bytes)))
    for (const mode of ['dataflow', 'control'] as const) {
      // placement keeps the consumer on its producer's peer whenever a slot is free there, so both kinds are shown
      const gaps = { other: [] as number[], same: [] as number[] }
      for (let i = 0; i < N + 2; i++) {
        const c = clients[i % clients.length]
        const id = await c.submit({ workflow: file.cid, inputs: { seed: i }, mode })
        const view = await c.wait(id, { pollMs: 20 })
        if (i < 2 || view.status !== 'ok') continue // warm-up
        const peerOf = (name: string): string | null => view.steps.find(s => s.name === name)?.peer ?? null
        const { logs } = await c.logs(id)
        const at = (word: string): number => Number(logs.find(l => l.line.startsWith(word))?.line.split(' ')[1])
        const gap = at('running') - at('posted')
        if (Number.isFinite(gap)) gaps[peerOf('produce') === peerOf('consume') ? 'same' : 'other'].push(gap)
      }
      console.log(`1. output posted -> consumer running, ${mode.padEnd(8)}: on another peer ${fmt(gaps.other)}; on the producer's peer ${fmt(gaps.same)}`)
    }
  })
}

/** 2: two libp2p nodes, one topic; the message carries its send time. */
async function gossipLatency (): Promise<void> {
  const a = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
  const b = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
  await a.start()
  await b.start()
  try {
    const topic = 'dflow-micro-gossip'
    const got: number[] = []
    b.services.pubsub.subscribe(topic)
    a.services.pubsub.subscribe(topic)
    b.services.pubsub.addEventListener('message', ev => {
      if (ev.detail.topic !== topic) return
      got.push(performance.timeOrigin + performance.now() - Number(new TextDecoder().decode(ev.detail.data)))
    })
    await a.dial(b.getMultiaddrs()[0])
    const deadline = Date.now() + 10_000
    while (!a.services.pubsub.getSubscribers(topic).some(p => p.equals(b.peerId))) {
      if (Date.now() > deadline) throw new Error('gossip: b never subscribed as seen by a')
      await sleep(50)
    }
    await sleep(1000) // a heartbeat or two, so b is in a's mesh
    const n = Math.max(N * 5, 100)
    for (let i = 0; i < n; i++) {
      await a.services.pubsub.publish(topic, new TextEncoder().encode(String(performance.timeOrigin + performance.now())))
      await sleep(10)
    }
    await sleep(500)
    console.log(`2. gossip event latency, publish -> receive, 2 in-process nodes over loopback: ${fmt(got)} of ${n} sent`)
  } finally {
    await a.stop()
    await b.stop()
  }
}

/** 3: the store benchmark, one round per size. */
function storeThroughput (): void {
  console.log('3. DStore fetch throughput vs raw stream (testnet/bench-store.ts, ROUNDS=1):')
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'bench-store.ts')], { encoding: 'utf8', env: { ...process.env, ROUNDS: process.env.ROUNDS ?? '1' }, timeout: 300_000 })
  const text = (res.stdout ?? '') + (res.status === 0 ? '' : `\n(exit ${res.status}) ${res.stderr ?? ''}`)
  console.log(text.trimEnd().split('\n').map(l => `   ${l}`).join('\n'))
}

/** 4: one embedded peer runs the trivial chain (bundled once, as a deployed workflow) many times, then 4 at a time. */
async function stepRate (): Promise<void> {
  const peer = await EmbeddedPeer.create({ slots: 4 })
  const RUNS = 300
  try {
    const workflow = await peer.loader.register(await loadWorkflow(join(here, 'bench/micro/trivial.yaml')))
    const run = async (seed: number): Promise<void> => {
      const id = await peer.scheduler.submit({ workflow, inputs: { seed } })
      await peer.scheduler.waitFinished(id)
    }
    for (let i = 0; i < 3; i++) await run(-i - 1) // warm-up
    let t0 = performance.now()
    for (let i = 0; i < RUNS; i++) await run(i)
    const seq = (3 * RUNS) / ((performance.now() - t0) / 1000)
    t0 = performance.now()
    for (let i = 0; i < RUNS; i += 4) await Promise.all([0, 1, 2, 3].map(async k => { await run(10_000 + i + k) }))
    const par = (3 * RUNS) / ((performance.now() - t0) / 1000)
    console.log(`4. step executions per second, one embedded peer, 4 slots, trivial 3-step chain (${RUNS} requests): ${seq.toFixed(0)}/s one request at a time, ${par.toFixed(0)}/s 4 requests at a time`)
  } finally {
    await peer.stop()
  }
}

/** 5: events.published summed over peers around N wordcount requests. */
async function eventsPerRequest (peers: number): Promise<void> {
  const wc = exampleWorkflows.find(e => e.name === 'wordcount')!
  const file = await loadWorkflow(wc.path)
  await withTestnet(peers, async clients => {
    await Promise.all(clients.map(async c => c.addWorkflow(file.bytes)))
    const counters = async (): Promise<{ published: number, received: number }> => {
      const all = await Promise.all(clients.map(async c => {
        const res = await fetch(`${c.api}/v1/metrics/scheduler`, { headers: authHeaderFor(c.api), signal: AbortSignal.timeout(5000) })
        return (await res.json() as { events: { published: number, received: number } }).events
      }))
      return { published: all.reduce((a, e) => a + e.published, 0), received: all.reduce((a, e) => a + e.received, 0) }
    }
    const text = Array.from({ length: 120 }, (_, i) => `line ${i} the cat and the hat`).join('\n')
    const before = await counters()
    let steps = 0
    for (let i = 0; i < N; i++) {
      const c = clients[i % clients.length]
      const view = await c.wait(await c.submit({ workflow: file.cid, inputs: { text: `${text}\n${i}` } }), { pollMs: 20 })
      steps += view.steps.length
    }
    await sleep(1000) // late events (request done, pushes) land
    const after = await counters()
    console.log(`5. readiness events per request, wordcount (${(steps / N).toFixed(0)} step instances), ${peers} peers: ${((after.published - before.published) / N).toFixed(1)} published, ${((after.received - before.received) / N).toFixed(1)} received (sum over peers), n=${N}`)
  })
}

const figures: Array<[string, () => Promise<void> | void]> = [
  ['1', postToConsumer], ['2', gossipLatency], ['3', storeThroughput], ['4', stepRate],
  ['5', async () => { await eventsPerRequest(4); await eventsPerRequest(8) }],
  ['6', async () => { await shapesSection() }],
  ['7', async () => { await isolationSection() }]
]
for (const [n, fn] of figures) {
  if (SKIP.has(n)) continue
  try {
    await fn()
  } catch (err) {
    console.log(`${n}. failed: ${(err as Error).stack ?? String(err)}`)
    process.exitCode = 1
  }
}
process.exit()
