import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDflowPeer, type DflowPeer } from '../../node/dflow-peer.ts'
import { resolveConfig } from '../../node/config.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import type { WorkflowGraph } from '../../node/api/workflows.ts'
import type { NetworkResponse } from '../../node/api/network-view.ts'

const PIPELINE = fileURLToPath(new URL('../dscheduler/fixtures/pipeline.yaml', import.meta.url))

describe('dashboard routes of one in-process peer', () => {
  let p: DflowPeer
  let api: string
  let cache: string

  beforeAll(async () => {
    cache = await mkdtemp(join(tmpdir(), 'dflow-dash-cache-'))
    process.env.DFLOW_CACHE_DIR = cache
    p = await createDflowPeer(resolveConfig({ slots: 3 }))
    await p.peer.start()
    api = p.peer.api.url
  })

  afterAll(async () => {
    await p?.peer.stop()
    delete process.env.DFLOW_CACHE_DIR
    await rm(cache, { recursive: true, force: true })
  })

  it('GET / and GET /requests/<id> serve the page; app.js is bundled once, cached on disk by hash, with an ETag', async () => {
    const home = await fetch(`${api}/`)
    expect(home.status).toBe(200)
    expect(home.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await home.text()
    expect(html).toContain(`data-peer="${p.peer.peerId.toString()}"`)
    const src = /src="(\/dashboard\/app\.js\?v=([0-9a-f]{16}))"/.exec(html)
    expect(src).not.toBeNull()
    const req = await fetch(`${api}/requests/some-id`)
    expect(req.status).toBe(200)
    expect(await req.text()).toContain(src![1])
    const js = await fetch(`${api}${src![1]}`)
    expect(js.status).toBe(200)
    expect(js.headers.get('etag')).toBe(`"${src![2]}"`)
    expect(js.headers.get('content-encoding')).toBe('gzip')
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
    const again = await fetch(`${api}/dashboard/app.js`, { headers: { 'if-none-match': `"${src![2]}"` } })
    expect(again.status).toBe(304)
    const { readdir } = await import('node:fs/promises')
    expect(await readdir(join(cache, 'dashboard'))).toEqual([`${src![2]}.js`])
  })

  it('GET /v1/workflows/:cid answers the steps and edges of a known workflow, 400/404 otherwise', async () => {
    const file = await loadWorkflow(PIPELINE)
    const { workflow } = await (await fetch(`${api}/v1/workflows`, { method: 'POST', body: file.bytes, headers: { authorization: `Bearer ${p.peer.api.token}`, 'content-type': 'application/cbor' } })).json() as { workflow: string }
    const g = await (await fetch(`${api}/v1/workflows/${workflow}`)).json() as WorkflowGraph
    expect(g.name).toBe('pipeline')
    expect(g.steps.map(s => s.name)).toEqual(['stream', 'double', 'again', 'sum'])
    expect(g.edges).toEqual(expect.arrayContaining([
      { from: 'inputs', to: 'stream', label: 'n → n' },
      { from: 'stream', to: 'double', label: 'items → foreach' },
      { from: 'again', to: 'sum', label: 'y → xs' },
      { from: 'sum', to: 'outputs', label: 'total → total' }
    ]))
    expect((await fetch(`${api}/v1/workflows/not%20a%20cid`)).status).toBe(400)
    const unknown = await fetch(`${api}/v1/workflows/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy`)
    expect(unknown.status).toBe(404)
  })

  it('GET /v1/network of a lone peer lists itself with its own figures', async () => {
    const net = await (await fetch(`${api}/v1/network`)).json() as NetworkResponse
    expect(net.self).toBe(p.peer.peerId.toString())
    expect(net.peers).toHaveLength(1)
    expect(net.peers[0]).toMatchObject({ peerId: net.self, self: true, alive: true, status: { slots: 3, busy: 0 } })
  })
})
