import { describe, expect, it } from 'vitest'
import * as dagCbor from '@ipld/dag-cbor'
import { defaultLogger } from '@libp2p/logger'
import { DStoreService } from '../../node/dstore/dstore.ts'
import { storeRoutes } from '../../node/dstore/routes.ts'
import { TrafficMetrics } from '../../node/metrics/traffic.ts'
import type { ApiRequest, Route } from '../../node/api/types.ts'

function request (params: Record<string, string>, body: Uint8Array, contentType = 'application/octet-stream'): ApiRequest {
  return {
    method: 'GET',
    url: new URL('http://localhost/'),
    params,
    body: async () => body,
    json: async () => JSON.parse(new TextDecoder().decode(body)),
    raw: { headers: { 'content-type': contentType } } as any
  }
}

function fakeRes (): { res: any, out: { status?: number, headers?: any, body?: Uint8Array } } {
  const out: { status?: number, headers?: any, body?: Uint8Array } = {}
  return { out, res: { writeHead: (s: number, h: any) => { out.status = s; out.headers = h }, end: (b: Uint8Array) => { out.body = b } } }
}

describe('store HTTP routes', () => {
  it('stores and serves raw bytes and JSON values; 400/404 on bad or absent CIDs', async () => {
    const store = new DStoreService({ logger: defaultLogger() })
    await store.start()
    const routes = storeRoutes(store, new TrafficMetrics())
    const route = (m: string, p: string): Route => routes.find(r => r.method === m && r.path === p)!
    const raw = Uint8Array.of(1, 2, 3)
    const a = await route('POST', '/v1/blocks').handler(request({}, dagCbor.encode(raw), 'application/cbor'), fakeRes().res) as any
    // application/cbor bodies are dag-cbor values; garbage is a 400, not a crash
    await expect(route('POST', '/v1/blocks').handler(request({}, Uint8Array.of(0xff, 0x00), 'application/cbor'), fakeRes().res)).rejects.toMatchObject({ status: 400 })
    expect(a.size).toBeGreaterThan(3)
    const r1 = fakeRes()
    expect(await route('GET', '/v1/blocks/:cid').handler(request({ cid: a.cid }, new Uint8Array()), r1.res)).toBeUndefined()
    expect(r1.out.body).toEqual(raw)
    const json = new TextEncoder().encode(JSON.stringify({ x: [1, { $bytes: 'AQI=' }] }))
    const b = await route('POST', '/v1/blocks').handler(request({}, json, 'application/json'), fakeRes().res) as any
    expect(await route('GET', '/v1/blocks/:cid').handler(request({ cid: b.cid }, new Uint8Array()), fakeRes().res)).toEqual({ x: [1, { $bytes: 'AQI' }] }) // multiformats base64: unpadded
    await expect(route('GET', '/v1/blocks/:cid').handler(request({ cid: 'garbage' }, new Uint8Array()), fakeRes().res)).rejects.toMatchObject({ name: 'HttpError', status: 400 })
    const absent = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    await expect(route('GET', '/v1/blocks/:cid').handler(request({ cid: absent }, new Uint8Array()), fakeRes().res)).rejects.toMatchObject({ status: 404 })
    expect(await route('GET', '/v1/store/stats').handler(request({}, new Uint8Array()), fakeRes().res)).toMatchObject({ blocks: 2 })
    expect(await route('GET', '/v1/metrics/traffic').handler(request({}, new Uint8Array()), fakeRes().res)).toMatchObject({ total: { sent: 0, received: 0 } })
    await store.stop()
  })
})
