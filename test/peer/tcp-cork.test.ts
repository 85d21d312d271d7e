import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { TrafficMetrics } from '../../node/metrics/traffic.ts'

const PROTOCOL = '/dflow-test/cork/1.0.0'

/** Counts the write syscalls a socket's handle is asked for (writeBuffer: one buffer; writev: many at once). */
function countWrites (socket: any): { calls: number } {
  const counter = { calls: 0 }
  const handle = socket._handle
  for (const name of ['writeBuffer', 'writev', 'writeLatin1String', 'writeUtf8String']) {
    const original = handle[name]
    if (typeof original !== 'function') continue
    handle[name] = function (...args: unknown[]) { counter.calls++; return original.apply(this, args) }
  }
  return counter
}

async function start (counted: boolean): Promise<DflowLibp2p> {
  const node = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519'), ...(counted ? { metrics: (c: any) => new TrafficMetrics(c) } : {}) })
  await node.start()
  return node
}

// counted first: with the traffic counters a dflow peer runs with: they wrap each raw connection's sendData before it opens, and
// the node's first connection went out uncorked when corking patched the class after that
describe.each([true, false])('TCP write coalescing (traffic counters: %s)', (counted) => {
  it('sends the frames of one tick in a few writes, and bulk data unchanged and in order', async () => {
    const [a, b] = [await start(counted), await start(counted)]
    try {
      let received = new Uint8Array(0)
      const done = Promise.withResolvers<void>()
      const SMALL = 100
      const BULK = 1024 * 1024
      const total = SMALL * 40 + BULK
      await b.handle(PROTOCOL, async stream => {
        const parts: Uint8Array[] = []
        let n = 0
        for await (const chunk of stream) {
          const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
          parts.push(bytes.slice()); n += bytes.byteLength
          if (n >= total) break
        }
        received = Buffer.concat(parts)
        done.resolve()
      })
      const conn = await a.dial(b.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
      const stream = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const socket = (conn as any).maConn?.socket
      expect(socket, 'the TCP connection exposes its socket').toBeDefined()
      // let the stream's own opening frames go out before counting
      await new Promise(resolve => setTimeout(resolve, 50))
      const writes = countWrites(socket)
      const expected: Uint8Array[] = []
      for (let i = 0; i < SMALL; i++) {
        const m = new Uint8Array(40).fill(i % 251)
        expected.push(m)
        stream.send(m)
      }
      await new Promise(resolve => setImmediate(resolve))
      // 100 yamux frames, each a noise frame of two buffers: 200 writes without coalescing
      expect(writes.calls).toBeLessThanOrEqual(4)
      const bulk = new Uint8Array(BULK).map((_, i) => (i * 7) % 256)
      expected.push(bulk)
      if (!stream.send(bulk)) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
      await Promise.race([done.promise, new Promise((_, reject) => setTimeout(() => reject(new Error('receiver did not get everything in 20 s')), 20_000))])
      expect(received.byteLength).toBe(total)
      expect(Buffer.compare(received, Buffer.concat(expected))).toBe(0)
      await stream.close()
    } finally {
      await a.stop(); await b.stop()
    }
  })
})
