import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { startTestnet, type Testnet } from '../../testnet/index.ts'

const SMALL = fileURLToPath(new URL('../../testnet/scale/small.yaml', import.meta.url))

interface Counters { published: number, received: number }

async function counters (api: string): Promise<Counters> {
  const res = await fetch(`${api}/v1/metrics/scheduler`, { signal: AbortSignal.timeout(3000) })
  return (await res.json() as { events: Counters }).events
}

describe('readiness', () => {
  let dir: string | undefined
  let net: Testnet | undefined

  afterAll(async () => {
    await net?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }, 30_000)

  it('nothing is gossiped at rest, and every event published right after up reaches every peer', async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-first-event-'))
    net = await startTestnet({ peers: 6, dir, flags: ['--slots', '2'] })
    const peers = net.manifest.peers
    const clients = await net.clients()
    const wf = await loadWorkflow(SMALL)
    await Promise.all(clients.map(async c => c.addWorkflow(wf.bytes)))
    // membership travels over its own probe protocol: no heartbeat events, so the counters start at zero
    expect(await Promise.all(peers.map(async p => counters(p.api)))).toMatchObject(peers.map(() => ({ published: 0, received: 0 })))

    const view = await clients[0].wait(await clients[0].submit({ workflow: wf.cid, inputs: { n: 4 } }))
    expect(view.status).toBe('ok')
    expect(view.outputs.total).toBe(14)

    // every peer receives every event every other peer published, the first (request-started) included
    const expectations = async (): Promise<Array<{ received: number, expected: number }>> => {
      const all = await Promise.all(peers.map(async p => counters(p.api)))
      const published = all.reduce((a, c) => a + c.published, 0)
      return all.map(c => ({ received: c.received, expected: published - c.published }))
    }
    const deadline = Date.now() + 15_000
    let seen = await expectations()
    while (seen.some(s => s.received !== s.expected) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 200))
      seen = await expectations()
    }
    expect(seen.every(s => s.expected > 0)).toBe(true)
    expect(seen.map(s => s.received)).toEqual(seen.map(s => s.expected))
  }, 120_000)
})
