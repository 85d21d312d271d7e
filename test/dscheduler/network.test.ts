import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { authHeaderFor, startTestnet, type Testnet } from '../../testnet/index.ts'
import { DflowClient } from '../../node/client.ts'
import { EmbeddedPeer } from '../../node/engine/embedded.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { toJsonValue, type Value } from '../../node/values/codec.ts'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import type { RequestView } from '../../node/dscheduler/types.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

describe('DScheduler across 4 peer processes', () => {
  let dir: string
  let net: Testnet
  let clients: DflowClient[]
  let embedded: EmbeddedPeer

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-sched-'))
    net = await startTestnet({ peers: 4, dir, flags: ['--heartbeat', '500ms', '--failure-timeout', '3s'] })
    clients = await net.clients()
    embedded = await EmbeddedPeer.create()
  }, 120_000)

  afterAll(async () => {
    await net?.stop()
    await embedded?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const submit = async (path: string, inputs: Record<string, unknown>, at: number, extra: { mode?: string, store?: string } = {}): Promise<string> => {
    const file = await loadWorkflow(path)
    const workflow = await clients[at].addWorkflow(file.bytes)
    return clients[at].submit({ workflow, inputs: toJsonValue(inputs as Value) as Record<string, unknown>, ...extra })
  }

  it('every example, submitted to any peer, gives what dflow run gives, and steps spread over peers', async () => {
    const peersUsed = new Set<string>()
    let at = 0
    for (const ex of exampleWorkflows) {
      const reference = await embedded.run(ex.path, ex.inputs as Record<string, Value>)
      expect(reference.status).toBe('ok')
      // the first request of a workflow finds every peer cold (bundle fetched and checked, workers started);
      // a peer that lags past a lease there may see its work taken over, which the check below is not about
      const warm = await clients[at % 4].wait(await submit(ex.path, ex.inputs, at % 4))
      expect(warm.outputs).toEqual(reference.outputs)
      for (const mode of ['dataflow', 'control']) {
        const id = await submit(ex.path, ex.inputs, at % 4, { mode })
        const view = await clients[(at + 1) % 4].wait(id)
        at++
        expect(view.status, `${ex.name} ${mode}: ${view.error}`).toBe('ok')
        expect(view.outputs).toEqual(reference.outputs)
        for (const s of view.steps) if (s.peer !== null) peersUsed.add(s.peer)
        // in normal operation every instance runs on exactly one peer
        const body = await (await fetch(`${net.manifest.peers[at % 4].api}/v1/requests/${id}/events`)).text()
        const done = body.split('\n\n').filter(b => b.startsWith('event: step-done')).map(b => JSON.parse(b.slice(b.indexOf('data: ') + 6)))
        const runs = new Map<string, number>()
        for (const ev of done) runs.set(`${ev.step}#${ev.index}`, (runs.get(`${ev.step}#${ev.index}`) ?? 0) + 1)
        expect([...runs.values()].every(n => n === 1), JSON.stringify([...runs])).toBe(true)
      }
    }
    expect(peersUsed.size).toBeGreaterThan(1)
  })

  it('a request submitted to peer 3 is followed and read from peer 1', async () => {
    const id = await submit(fixture('pipeline.yaml'), { n: 4 }, 3)
    const view = await clients[1].wait(id)
    expect(view.status).toBe('ok')
    expect(view.outputs).toEqual({ total: 240, ys: [0, 20, 40, 60] })
    const listed = await fetch(`${net.manifest.peers[2].api}/v1/requests`).then(async r => r.json()) as { requests: Array<{ requestId: string }> }
    expect(listed.requests.map(r => r.requestId)).toContain(id)
  })

  it('timeline: a consumer on another peer starts before its producer returned (dataflow), never in control mode', async () => {
    const runs = async (mode: string): Promise<RequestView[]> => {
      const out: RequestView[] = []
      for (let i = 0; i < 8; i++) out.push(await clients[i % 4].wait(await submit(fixture('dataflow.yaml'), { n: i }, i % 4, { mode })))
      return out
    }
    const step = (v: RequestView, name: string) => v.steps.find(s => s.name === name)!
    const dataflow = await runs('dataflow')
    const remote = dataflow.filter(v => step(v, 'consume').peer !== step(v, 'produce').peer)
    expect(remote.length).toBeGreaterThan(0)
    for (const v of remote) expect(step(v, 'consume').startMs!).toBeLessThan(step(v, 'produce').endMs!)
    for (const v of await runs('control')) expect(step(v, 'consume').startMs!).toBeGreaterThanOrEqual(step(v, 'produce').endMs!)
  })

  it('central store: every value goes through the submitter and results match', async () => {
    const ex = exampleWorkflows[0]
    const id = await submit(ex.path, ex.inputs, 2, { mode: 'control', store: 'central' })
    const view = await clients[0].wait(id)
    expect(view.status, view.error).toBe('ok')
    expect(view.outputs).toMatchObject(ex.expect)
  })

  it('bad submissions get clear 4xx errors', async () => {
    await expect(clients[0].submit({ workflow: 'not-a-cid', inputs: {} })).rejects.toMatchObject({ name: 'ApiError' })
    const r = await fetch(`${net.manifest.peers[0].api}/v1/requests`, { method: 'POST', body: '{"workflow": 1}', headers: { 'content-type': 'application/json', ...authHeaderFor(net.manifest.peers[0].api) } })
    expect(r.status).toBe(400)
    const missing = await fetch(`${net.manifest.peers[0].api}/v1/requests/nope`)
    expect(missing.status).toBe(404)
  })
})
