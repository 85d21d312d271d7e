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

  /**
   * Every run of every instance of a request, from every peer's run record. A finished run's phases are in the
   * order the runner goes through them (each stage is caused by the one before, on one host clock).
   */
  const runsOf = async (id: string): Promise<Map<string, string[]>> => {
    const runs = new Map<string, string[]>()
    const order = ['readyAt', 'slotAt', 'postedAt', 'startedAt', 'endedAt', 'resultAt', 'doneAt'] as const
    for (const p of net.manifest.peers) {
      const body = await (await fetch(`${p.api}/v1/requests/${id}/runs`)).json() as { runs: Array<{ step: string, index: number | null, peer: string, attempt: number, outcome: string, phases: Partial<Record<typeof order[number], number>> }> }
      for (const r of body.runs) {
        runs.set(`${r.step}#${r.index}`, [...(runs.get(`${r.step}#${r.index}`) ?? []), `${r.peer}/${r.attempt}`])
        if (r.outcome !== 'done') continue
        for (const k of ['postedAt', 'startedAt', 'endedAt', 'resultAt', 'doneAt'] as const) expect(r.phases[k], `${r.step} ${k}`).toBeTypeOf('number')
        const seen = order.flatMap(k => r.phases[k] === undefined ? [] : [[k, r.phases[k]] as const])
        for (let i = 1; i < seen.length; i++) expect(seen[i][1], `${r.step}: ${seen[i - 1][0]} ${seen[i - 1][1]} before ${seen[i][0]} ${seen[i][1]}`).toBeGreaterThanOrEqual(seen[i - 1][1])
      }
    }
    return runs
  }

  it('every example, submitted to any peer, gives what dflow run gives; every instance runs once, the cold first request included', async () => {
    const peersUsed = new Set<string>()
    let at = 0
    for (const ex of exampleWorkflows) {
      const reference = await embedded.run(ex.path, ex.inputs as Record<string, Value>)
      expect(reference.status).toBe('ok')
      // the first request of each workflow finds every peer cold (bundle fetched and checked, workers starting)
      for (const mode of [undefined, 'dataflow', 'control']) {
        const id = await submit(ex.path, ex.inputs, at % 4, mode === undefined ? {} : { mode })
        const watcher = clients[(at + 1) % 4]
        let view = await watcher.wait(id)
        // the watcher may hear a step-done after the request-done (another publisher): its view settles soon after
        for (let tries = 0; view.steps.some(s => s.status === 'running' || s.status === 'pending') && tries < 100; tries++) {
          await new Promise(resolve => setTimeout(resolve, 100))
          view = await watcher.status(id)
        }
        at++
        expect(view.status, `${ex.name} ${mode}: ${view.error}`).toBe('ok')
        expect(view.outputs).toEqual(reference.outputs)
        for (const s of view.steps) if (s.peer !== null) peersUsed.add(s.peer)
        // in normal operation every instance runs on exactly one peer, under one claim
        const runs = await runsOf(id)
        expect(runs.size).toBe(view.steps.filter(s => s.status === 'ok').length)
        expect([...runs.values()].every(r => r.length === 1), JSON.stringify([...runs])).toBe(true)
      }
    }
    expect(peersUsed.size).toBeGreaterThan(1)
  }, 240_000)

  it('a request submitted to peer 3 is followed and read from peer 1', async () => {
    const id = await submit(fixture('pipeline.yaml'), { n: 4 }, 3)
    const view = await clients[1].wait(id)
    expect(view.status).toBe('ok')
    expect(view.outputs).toEqual({ total: 240, ys: [0, 20, 40, 60] })
    const listed = await fetch(`${net.manifest.peers[2].api}/v1/requests`).then(async r => r.json()) as { requests: Array<{ requestId: string }> }
    expect(listed.requests.map(r => r.requestId)).toContain(id)
  })

  it('timeline: a consumer starts before its producer returned (dataflow), never in control mode', async () => {
    const runs = async (mode: string): Promise<RequestView[]> => {
      const out: RequestView[] = []
      for (let i = 0; i < 8; i++) out.push(await clients[i % 4].wait(await submit(fixture('dataflow.yaml'), { n: i }, i % 4, { mode })))
      return out
    }
    const step = (v: RequestView, name: string) => v.steps.find(s => s.name === name)!
    // produce posts its value, then works on for 400 ms: a hand-off (local or across peers) takes a few ms,
    // so the margin is wide; placement keeps the consumer with its producer unless that peer is busy
    for (const v of await runs('dataflow')) expect(step(v, 'consume').startMs!).toBeLessThan(step(v, 'produce').endMs!)
    for (const v of await runs('control')) expect(step(v, 'consume').startMs!).toBeGreaterThanOrEqual(step(v, 'produce').endMs!)
  })

  it('same-peer hand-off: only consumers placed with their producer start in its instance; results as in control mode', async () => {
    const chained = async (): Promise<number> => {
      let n = 0
      for (const c of clients) n += (await c.schedulerMetrics()).pool?.chainedStarts ?? 0
      return n
    }
    const before = await chained()
    const views: RequestView[] = []
    // the first request teaches the workflow's output sizes: consumers are claimed one level ahead from the second on
    for (let i = 0; i < 5; i++) views.push(await clients[i % 4].wait(await submit(fixture('chain.yaml'), { n: i }, i % 4)))
    const ctl = await clients[1].wait(await submit(fixture('chain.yaml'), { n: 4 }, 1, { mode: 'control' }))
    expect(ctl.outputs).toEqual(views[4].outputs)
    let samePeer = 0
    for (const [i, v] of views.entries()) {
      expect(v.status, v.error).toBe('ok')
      expect(v.outputs).toEqual({ result: i + 3, keys: [['a', 'b', 'nested'], ['y', 'zz']] })
      const peerOf = (name: string): string | null | undefined => v.steps.find(s => s.name === name)?.peer
      for (const [p, c] of [['a', 'b'], ['b', 'c'], ['o', 'k']]) if (peerOf(p) === peerOf(c)) samePeer++
    }
    const delta = await chained() - before
    // the producers work 300 ms, so a consumer placed with one is queued behind it; never one on another peer
    expect(delta).toBeGreaterThan(0)
    expect(delta).toBeLessThanOrEqual(samePeer)
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
    const badWait = await fetch(`${net.manifest.peers[0].api}/v1/requests/nope?waitMs=abc`)
    expect(badWait.status).toBe(400)
    expect(((await badWait.json()) as { error: { message: string } }).error.message).toMatch(/waitMs/)
  })

  it('a long poll answers once, when the request has finished', async () => {
    const id = await submit(fixture('pipeline.yaml'), { n: 4 }, 2)
    // one call, held by the peer until the end (the 30 s bound is far beyond the request's run time)
    const view = await (await fetch(`${net.manifest.peers[2].api}/v1/requests/${id}?waitMs=30000`)).json() as { status: string, outputs: unknown }
    expect(view.status).toBe('ok')
    expect(view.outputs).toEqual({ total: 240, ys: [0, 20, 40, 60] })
  })
})
