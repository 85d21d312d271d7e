import { request } from 'node:http'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { afterEach, describe, expect, it } from 'vitest'
import { ApiServer } from '../../node/api/server.ts'

/** node:http, not fetch: fetch will not send a forged Host header */
async function raw (url: string, opts: { method?: string, headers?: Record<string, string>, body?: string | Buffer } = {}): Promise<{ status: number, body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: 5000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }) })
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

describe('API trust boundary', () => {
  let server: ApiServer | undefined
  let dir: string | undefined
  afterEach(async () => {
    await server?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  async function start (): Promise<ApiServer> {
    dir = await mkdtemp(join(tmpdir(), 'dflow-guard-'))
    server = new ApiServer({ port: 0, logger: defaultLogger(), dataDir: dir })
    server.addRoutes([
      { method: 'GET', path: '/v1/things', handler: async () => ({ ok: true }) },
      { method: 'POST', path: '/v1/things', handler: async req => ({ got: await req.json() }) },
      { method: 'DELETE', path: '/v1/things', handler: async () => ({ deleted: true }) }
    ])
    await server.start()
    return server
  }

  it('writes DATA/api.token (0600) at first start and keeps it across restarts', async () => {
    const s = await start()
    const file = join(dir!, 'api.token')
    expect((await readFile(file, 'utf8')).trim()).toBe(s.token)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const token = s.token
    await s.stop()
    server = new ApiServer({ port: 0, logger: defaultLogger(), dataDir: dir })
    await server.start()
    expect(server.token).toBe(token)
  })

  it('needs the bearer token for writes (401), not for loopback reads', async () => {
    const s = await start()
    const json = { 'content-type': 'application/json' }
    expect((await raw(`${s.url}/v1/things`)).status).toBe(200)
    const missing = await raw(`${s.url}/v1/things`, { method: 'POST', headers: json, body: '{}' })
    expect(missing.status).toBe(401)
    expect(missing.body.error.message).toMatch(/Bearer/)
    expect((await raw(`${s.url}/v1/things`, { method: 'POST', headers: { ...json, authorization: 'Bearer wrong' }, body: '{}' })).status).toBe(401)
    expect((await raw(`${s.url}/v1/things`, { method: 'DELETE' })).status).toBe(401)
    expect(await raw(`${s.url}/v1/things`, { method: 'POST', headers: { ...json, authorization: `Bearer ${s.token}` }, body: '{"a":1}' })).toEqual({ status: 200, body: { got: { a: 1 } } })
    expect((await raw(`${s.url}/v1/things`, { method: 'DELETE', headers: { authorization: `Bearer ${s.token}` } })).status).toBe(200)
  })

  it('refuses a foreign Host (DNS rebinding) and a cross-origin Origin with 403', async () => {
    const s = await start()
    const port = new URL(s.url).port
    const rebinding = await raw(`${s.url}/v1/things`, { headers: { host: `evil.example:${port}` } })
    expect(rebinding.status).toBe(403)
    expect(rebinding.body.error.message).toMatch(/Host/)
    expect((await raw(`${s.url}/v1/things`, { headers: { host: `localhost:${port}` } })).status).toBe(200)
    const cross = await raw(`${s.url}/v1/things`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'application/json', authorization: `Bearer ${s.token}` },
      body: '{}'
    })
    expect(cross.status).toBe(403)
    expect(cross.body.error.message).toMatch(/cross-origin/)
    expect((await raw(`${s.url}/v1/things`, { headers: { origin: 'null' } })).status).toBe(403)
    // the API's own origin (the dashboard) passes
    expect((await raw(`${s.url}/v1/things`, { headers: { origin: s.url } })).status).toBe(200)
  })

  it('accepts only application/json or application/cbor bodies (415)', async () => {
    const s = await start()
    const auth = { authorization: `Bearer ${s.token}` }
    const plain = await raw(`${s.url}/v1/things`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: '{"a":1}' })
    expect(plain.status).toBe(415)
    expect((await raw(`${s.url}/v1/things`, { method: 'POST', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' })).status).toBe(415)
    expect((await raw(`${s.url}/v1/things`, { method: 'POST', headers: auth, body: '{"a":1}' })).status).toBe(415)
    // a1 61 01 is dag-cbor for {"a": 1}
    const cbor = await raw(`${s.url}/v1/things`, { method: 'POST', headers: { ...auth, 'content-type': 'application/cbor' }, body: Buffer.from([0xa1, 0x61, 0x61, 0x01]) })
    expect(cbor).toEqual({ status: 200, body: { got: { a: 1 } } })
  })
})
