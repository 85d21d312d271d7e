/**
 * `npm run bench:soak`: bounded state under load. A 4-peer testnet with a short retention gets a burst of
 * requests; it prints each peer's RSS after the first 100 and after all of them, and `trackedRequests` on every
 * peer a few seconds after the last one finished (it must be 0: finished requests are released after the
 * retention). A benchmark: it prints and asserts nothing.
 * Env: REQUESTS (default 1000), RETENTION (default 3s), CONCURRENCY (default 8), PEERS (default 4).
 */
import './../node/util/polyfill.ts'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadWorkflow } from '../node/workflow/index.ts'
import { exampleWorkflows } from '../functions/benchmarks/index.ts'
import { startTestnet } from './index.ts'

const REQUESTS = Number(process.env.REQUESTS ?? 1000)
const RETENTION = process.env.RETENTION ?? '3s'
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8)
const PEERS = Number(process.env.PEERS ?? 4)

async function rssMiB (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
  return kb / 1024
}

async function main (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dflow-soak-'))
  const net = await startTestnet({ peers: PEERS, dir, flags: ['--retention', RETENTION] })
  try {
    const clients = await net.clients()
    const ex = exampleWorkflows[0]
    const file = await loadWorkflow(ex.path)
    await Promise.all(clients.map(async c => c.addWorkflow(file.bytes)))
    const heap = async (): Promise<string> => (await Promise.all(net.manifest.peers.map(async p => {
      const text = await (await fetch(`${p.api}/metrics`)).text()
      return Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(text)?.[1] ?? NaN) / 2 ** 20
    }))).map(m => m.toFixed(0)).join(' ')
    const rss = async (): Promise<string> => `${(await Promise.all(net.manifest.peers.map(async p => rssMiB(p.pid)))).map(m => m.toFixed(0)).join(' ')} (heap used ${await heap()})`
    let next = 0
    let failed = 0
    let at100 = ''
    const t0 = Date.now()
    const worker = async (): Promise<void> => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const c = clients[i % clients.length]
        const view = await c.wait(await c.submit({ workflow: file.cid, inputs: ex.inputs as Record<string, unknown> }), { pollMs: 20 })
        if (view.status !== 'ok') failed++
        if (i === 99) at100 = await rss()
        if ((i + 1) % 500 === 0) console.log(`RSS MiB per peer after ${i + 1}: ${await rss()}`)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const seconds = (Date.now() - t0) / 1000
    const atEnd = await rss()
    console.log(`${REQUESTS} requests (${failed} failed) in ${seconds.toFixed(1)} s on ${PEERS} peers, retention ${RETENTION}`)
    console.log(`RSS MiB per peer after 100: ${at100}`)
    console.log(`RSS MiB per peer after ${REQUESTS}: ${atEnd}`)
    const tracked = async (): Promise<number[]> => Promise.all(net.manifest.peers.map(async p => {
      const m = await (await fetch(`${p.api}/v1/metrics/scheduler`)).json() as { trackedRequests: number }
      return m.trackedRequests
    }))
    console.log(`trackedRequests right after: ${(await tracked()).join(' ')}`)
    const end = Date.now() + 30_000
    let last = await tracked()
    while (last.some(n => n > 0) && Date.now() < end) {
      await new Promise(resolve => setTimeout(resolve, 500))
      last = await tracked()
    }
    console.log(`trackedRequests ${((Date.now() - t0) / 1000 - seconds).toFixed(1)} s after the last request: ${last.join(' ')}`)
    // gossipsub remembers every message id (and its delivery record) for its seen-TTL, 2 minutes: what is still
    // held once that has passed is what the requests left behind
    const settle = Number(process.env.SETTLE_S ?? 0)
    if (settle > 0) {
      await new Promise(resolve => setTimeout(resolve, settle * 1000))
      console.log(`RSS MiB per peer ${settle} s after the last request: ${await rss()}`)
    }
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
