import { request } from 'node:http'
import { defaultLogger } from '@libp2p/logger'
import { afterEach, describe, expect, it } from 'vitest'
import { ApiServer } from '../../node/api/server.ts'
import { HttpError } from '../../node/api/types.ts'

async function call (url: string, init?: RequestInit): Promise<{ status: number, body: any }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

function writeHeaders (s: ApiServer): Record<string, string> {
  return { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' }
}

describe('ApiServer', () => {
  let server: ApiServer | undefined
  afterEach(async () => { await server?.stop() })

  async function start (bodyLimitBytes?: number): Promise<ApiServer> {
    server = new ApiServer({ port: 0, logger: defaultLogger(), bodyLimitBytes })
    server.addRoutes([
      { method: 'GET', path: '/v1/things/:id', handler: async req => ({ id: req.params.id, q: req.url.searchParams.get('q') }) },
      { method: 'POST', path: '/v1/things', handler: async req => ({ got: await req.json() }) },
      { method: 'GET', path: '/v1/teapot', handler: async () => { throw new HttpError(418, 'short and stout') } },
      { method: 'GET', path: '/v1/boom', handler: async () => { throw new Error('kaboom') } },
      { method: 'GET', path: '/v1/sse', handler: async (_req, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.write('data: hi\n\n'); return undefined } }
    ])
    await server.start()
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    return server
  }

  it('routes with params and answers JSON', async () => {
    const s = await start()
    expect(await call(`${s.url}/v1/things/a%20b?q=1`)).toEqual({ status: 200, body: { id: 'a b', q: '1' } })
    expect(await call(`${s.url}/v1/things`, { method: 'POST', headers: writeHeaders(s), body: '{"x":1}' })).toEqual({ status: 200, body: { got: { x: 1 } } })
  })

  it('answers errors as JSON', async () => {
    const s = await start(16)
    expect(await call(`${s.url}/v1/nope`)).toEqual({ status: 404, body: { error: { status: 404, message: 'no route GET /v1/nope' } } })
    expect((await call(`${s.url}/v1/things/1`, { method: 'DELETE', headers: writeHeaders(s) })).status).toBe(405)
    expect(await call(`${s.url}/v1/teapot`)).toEqual({ status: 418, body: { error: { status: 418, message: 'short and stout' } } })
    const bad = await call(`${s.url}/v1/things`, { method: 'POST', headers: writeHeaders(s), body: '{not json' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/not JSON/)
    expect((await call(`${s.url}/v1/things`, { method: 'POST', headers: writeHeaders(s), body: JSON.stringify({ big: 'x'.repeat(100) }) })).status).toBe(413)
    expect(await call(`${s.url}/v1/boom`)).toEqual({ status: 500, body: { error: { status: 500, message: 'kaboom' } } })
    // still up after a handler threw
    expect((await call(`${s.url}/v1/things/2`)).status).toBe(200)
  })

  it('stop() closes open streams too', async () => {
    const s = await start()
    const ended = new Promise<void>((resolve, reject) => {
      const req = request(`${s.url}/v1/sse`, res => {
        res.once('data', () => { void s.stop() })
        res.on('close', () => { resolve() })
        res.resume()
      })
      req.on('error', () => { resolve() })
      req.end()
      setTimeout(() => { reject(new Error('SSE connection not closed by stop()')) }, 5000)
    })
    await ended
    await expect(fetch(`${s.url}/v1/things/1`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow()
  })

  it('reports a port in use with a named error', async () => {
    const s = await start()
    const other = new ApiServer({ port: Number(new URL(s.url).port), logger: defaultLogger() })
    await expect(other.start()).rejects.toMatchObject({ name: 'ApiListenError', message: expect.stringContaining('already in use') })
  })
})
