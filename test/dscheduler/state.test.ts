import { afterEach, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { defaultLogger } from '@libp2p/logger'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { BundleLoader } from '../../node/dscheduler/loader.ts'
import { DScheduler } from '../../node/dscheduler/scheduler.ts'
import { DStoreService } from '../../node/dstore/dstore.ts'
import { WorkerPool } from '../../node/executor/pool.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import type { Membership } from '../../node/dscheduler/types.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const SELF = 'state-peer'

interface Node { sched: DScheduler, store: DStoreService, stop: () => Promise<void> }

/** A peer without network whose store and request records live in `dir` (or in memory), with a short retention. */
async function node (opts: { dir?: string, retentionMs: number }): Promise<Node> {
  const logger = defaultLogger()
  const store = new DStoreService({ logger, config: { dataDir: opts.dir, retentionMs: opts.retentionMs } })
  const pool = new WorkerPool({ slots: 4 })
  const loader = new BundleLoader(store)
  const bus = new LocalBus()
  const membership: Membership = { live: () => [SELF], isLive: () => true, incarnation: Date.now(), incarnationOf: () => undefined, lastHeard: () => Date.now() }
  const sched = new DScheduler({ self: SELF, bus, store, pool, loader, membership, logger }, {
    slots: 4, leaseMs: 0, retentionMs: opts.retentionMs, recordsDir: opts.dir === undefined ? '' : join(opts.dir, 'requests')
  })
  await store.start()
  await bus.start()
  await sched.start()
  return { sched, store, stop: async () => { await sched.stop(); await bus.stop(); await pool.stop(); await store.stop() } }
}

async function run (sched: DScheduler, workflow: string, n: number): Promise<string> {
  const id = await sched.submit({ workflow, inputs: { n } })
  await sched.waitFinished(id)
  return id
}

async function until (what: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

describe('bounded state and durable results', () => {
  const cleanup: Array<() => Promise<void>> = []
  // last pushed runs first: a peer stops before its directory goes, so no write of its lands in a directory being removed
  afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

  it('a finished request\'s state goes after the retention: trackedRequests returns to 0, memory stays flat', async () => {
    const peer = await node({ retentionMs: 300 })
    cleanup.push(peer.stop)
    const wf = await (peer.sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('branches.yaml')))
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    // the peer's idle GC (node/util/idle-gc.ts) waits for this
    let idles = 0
    peer.sched.addEventListener('scheduler:idle', () => { idles++ })
    // what else is kept per request (the gossip bus's starters) is released on this
    const forgotten = new Set<string>()
    peer.sched.addEventListener('scheduler:forgotten', ev => { forgotten.add(ev.detail) })
    const heapAfter = async (requests: number): Promise<number> => {
      for (let i = 0; i < requests; i++) await run(peer.sched, wf, i)
      await until(() => peer.sched.trackedRequests() === 0, 10_000)
      gc()
      return process.memoryUsage().heapUsed
    }
    expect(peer.sched.trackedRequests()).toBe(0)
    const first = await heapAfter(20)
    const idlesAfterFirst = idles
    expect(idlesAfterFirst).toBeGreaterThanOrEqual(1)
    const later = await heapAfter(100)
    expect(idles).toBeGreaterThan(idlesAfterFirst)
    // what is left grows with nothing the requests brought: retention released them all
    expect(later / first).toBeLessThan(1.1)
    expect(peer.sched.list()).toEqual([])
    expect(forgotten.size).toBe(120)
  }, 120_000)

  it('a restarted peer still answers a finished request\'s status and outputs within the retention', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-state-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const first = await node({ dir, retentionMs: 60_000 })
    const wf = await (first.sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('dataflow.yaml')))
    const id = await run(first.sched, wf, 20)
    const before = await first.sched.view(id)
    expect(before?.status).toBe('ok')
    const retainedBefore = first.store.stats().retained
    expect(retainedBefore).toBeGreaterThan(0)
    await first.stop()

    const second = await node({ dir, retentionMs: 60_000 })
    cleanup.push(second.stop)
    // the results it retained are still protected (pins survive in DATA/pins.json), not mere cache
    expect(second.store.stats().retained).toBe(retainedBefore)
    expect(second.sched.has(id)).toBe(true)
    const after = await second.sched.view(id)
    expect(after?.status).toBe('ok')
    expect(after?.outputs).toEqual(before?.outputs)
    expect(after?.steps.map(s => [s.name, s.status, s.peer])).toEqual(before?.steps.map(s => [s.name, s.status, s.peer]))
    expect(second.sched.list().map(r => r.requestId)).toContain(id)
    // a request id that finished is not started again
    expect(await second.sched.submit({ workflow: wf, inputs: { n: 1 }, requestId: id })).toBe(id)
    expect(second.sched.trackedRequests()).toBe(0)
  }, 60_000)

  it('a record is written even when its directory went since the last one (the directory is made once, then again if gone)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-state-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const peer = await node({ dir, retentionMs: 60_000 })
    cleanup.push(peer.stop)
    const wf = await (peer.sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('dataflow.yaml')))
    const file = (id: string): string => join(dir, 'requests', `${encodeURIComponent(id)}.json`)
    const first = await run(peer.sched, wf, 3)
    await until(() => existsSync(file(first)), 10_000)
    await rm(join(dir, 'requests'), { recursive: true, force: true })
    const second = await run(peer.sched, wf, 4)
    await until(() => existsSync(file(second)), 10_000)
    expect(JSON.parse(readFileSync(file(second), 'utf8'))).toMatchObject({ status: 'ok' })
  }, 60_000)
})
