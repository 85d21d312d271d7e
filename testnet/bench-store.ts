/**
 * `npm run bench:store`: DStore fetch throughput vs a raw libp2p stream on the same connection, and local
 * put/get latency. A benchmark, not a test: it prints figures and asserts nothing.
 */
import '../node/util/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import * as hdr from 'hdr-histogram-js'
import { createDflowLibp2p, type DflowLibp2p } from '../node/network/libp2p.ts'
import { DStoreService } from '../node/dstore/dstore.ts'
import type { Stream } from '@libp2p/interface'

const MiB = 1024 * 1024
const RAW_PROTOCOL = '/dflow/bench/raw/1.0.0'
const ROUNDS = Number(process.env.ROUNDS ?? 3)

function bytesOf (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  const view = new Uint32Array(out.buffer, 0, Math.floor(n / 4))
  let x = seed >>> 0 || 1
  for (let i = 0; i < view.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; view[i] = x >>> 0 }
  return out
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function peer (): Promise<{ libp2p: DflowLibp2p, store: DStoreService }> {
  const libp2p = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
  await libp2p.start()
  const store = new DStoreService({ libp2p, logger: defaultLogger(), config: { replicas: 0, capacity: 4096 * MiB, window: Number(process.env.WINDOW ?? 4) } })
  await store.start()
  return { libp2p, store }
}

/** Raw baseline: the holder writes `size` bytes in 256 KiB sends, honouring backpressure; the reader drains to EOF. */
async function rawFetch (reader: DflowLibp2p, holder: DflowLibp2p, size: number): Promise<number> {
  const t0 = performance.now()
  const stream = await reader.dialProtocol(holder.peerId, RAW_PROTOCOL, { signal: AbortSignal.timeout(60_000) })
  stream.send(Uint8Array.of(size / MiB))
  let got = 0
  for await (const chunk of stream) got += chunk.byteLength
  const ms = performance.now() - t0
  if (got !== size) throw new Error(`raw stream delivered ${got}/${size}`)
  await stream.close().catch(() => {})
  return ms
}

function serveRaw (holder: DflowLibp2p, payload: Uint8Array): Promise<void> {
  return holder.handle(RAW_PROTOCOL, (stream: Stream) => {
    void (async () => {
      for await (const first of stream) {
        const size = first.subarray(0, 1)[0] * MiB
        for (let off = 0; off < size; off += 256 * 1024) {
          if (!stream.send(payload.subarray(0, Math.min(256 * 1024, size - off)))) await stream.onDrain({ signal: AbortSignal.timeout(60_000) })
        }
        await stream.close()
        break
      }
    })().catch(err => { stream.abort(err) })
  })
}

async function throughput (): Promise<void> {
  const holder = await peer()
  const reader = await peer()
  try {
    await reader.libp2p.dial(holder.libp2p.getMultiaddrs()[0])
    await serveRaw(holder.libp2p, bytesOf(256 * 1024, 9))
    console.log(`fetch throughput, one connection over loopback TCP+noise+yamux, median of ${ROUNDS} rounds`)
    console.log('size     raw stream      DStore get      ratio   (DStore get = fetch + verify + store + assemble + decode)')
    let seed = 1
    for (const mib of [1, 16, 64]) {
      const size = mib * MiB
      await rawFetch(reader.libp2p, holder.libp2p, size) // warm-up
      const raws: number[] = []
      const gets: number[] = []
      for (let r = 0; r < ROUNDS; r++) {
        raws.push(await rawFetch(reader.libp2p, holder.libp2p, size))
        const { cid } = await holder.store.put(bytesOf(size, seed++))
        const t0 = performance.now()
        await reader.store.get(cid, { holders: [holder.libp2p.peerId] })
        gets.push(performance.now() - t0)
      }
      const rawRate = size / MiB / (median(raws) / 1000)
      const getRate = size / MiB / (median(gets) / 1000)
      console.log(`${String(mib).padStart(3)} MiB  ${rawRate.toFixed(0).padStart(6)} MiB/s ${median(raws).toFixed(1).padStart(7)} ms  ${getRate.toFixed(0).padStart(6)} MiB/s ${median(gets).toFixed(1).padStart(7)} ms  ${(getRate / rawRate).toFixed(2)}`)
    }
  } finally {
    await reader.store.stop(); await holder.store.stop()
    await reader.libp2p.stop(); await holder.libp2p.stop()
  }
}

async function localLatency (): Promise<void> {
  const store = new DStoreService({ logger: defaultLogger() })
  await store.start()
  try {
    for (const [label, make] of [
      ['1 KiB object', (i: number) => ({ i, payload: 'x'.repeat(1000) })],
      ['64 KiB bytes', (i: number) => bytesOf(64 * 1024, i + 1)]
    ] as const) {
      const put = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
      const get = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
      const cids = []
      for (let i = 0; i < 3000; i++) {
        const value = make(i)
        let t0 = performance.now()
        const { cid } = await store.put(value, { pin: 'bench' })
        put.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)))
        cids.push(cid)
        t0 = performance.now()
        await store.get(cid)
        get.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)))
      }
      console.log(`local ${label.padEnd(13)} put p50 ${put.getValueAtPercentile(50)} us  p99 ${put.getValueAtPercentile(99)} us   get p50 ${get.getValueAtPercentile(50)} us  p99 ${get.getValueAtPercentile(99)} us  (n=3000)`)
      await store.unpinRequest('bench')
    }
  } finally { await store.stop() }
}

await throughput()
await localLatency()
process.exit(0)
