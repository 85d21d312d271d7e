import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { waitDoneEvents } from '../../testnet/bench/request.ts'

let server: Server | undefined
afterEach(async () => { await new Promise<void>(resolve => { if (server === undefined) resolve(); else server.close(() => { resolve() }) }) })

/** An events route that sends `events` (name, data) in the chunks given, then ends the stream. */
async function serve (chunks: string[]): Promise<string> {
  server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (const c of chunks) res.write(c)
    res.end()
  })
  await new Promise<void>(resolve => server!.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  return `http://127.0.0.1:${addr.port}`
}

describe('bench: waiting for a request to end over its event stream', () => {
  it('sees a request-done whose data line is longer than 4 KiB (many outputs)', async () => {
    const outputs = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`output_${i}`, { cid: 'bafy'.padEnd(59, 'x'), size: 1000, holders: ['12D3KooW'.padEnd(52, 'p')] }]))
    const done = `event: request-done\ndata: ${JSON.stringify({ type: 'request-done', request: 'r', outputs })}\n\n`
    expect(done.length).toBeGreaterThan(8192)
    const api = await serve(['event: step-done\ndata: {}\n\n', done])
    expect(await waitDoneEvents(api, 'r', AbortSignal.timeout(5000))).toBe(true)
  })

  it('finds the event name split between two chunks', async () => {
    const api = await serve(['event: step-done\ndata: {}\n\nevent: request-', 'done\ndata: {}\n\n'])
    expect(await waitDoneEvents(api, 'r', AbortSignal.timeout(5000))).toBe(true)
  })

  it('answers false when the stream ends without a request-done', async () => {
    const api = await serve(['event: step-done\ndata: {}\n\n'])
    expect(await waitDoneEvents(api, 'r', AbortSignal.timeout(5000))).toBe(false)
  })
})
