import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lpStream } from '@libp2p/utils'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connectAll, randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import { decodeFrame, encodeRequestFrame, type StatusMessage } from '../../protocols/fetch/codec.ts'
import { FETCH_PROTOCOL } from '../../protocols/fetch/constants.ts'
import { PUSH_PROTOCOL } from '../../protocols/push/constants.ts'
import { encodeBlocks } from '../../node/dstore/blocks.ts'
import type { Stream } from '@libp2p/interface'

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

async function status (stream: Stream): Promise<StatusMessage> {
  const frame = decodeFrame(await lpStream(stream).read({ signal: AbortSignal.timeout(10_000) }))
  if (frame.type !== 'status') throw new Error(`expected status, got ${frame.type}`)
  return frame.body
}

describe('fetch and push wire protocols', () => {
  let peers: TestPeer[] = []
  beforeAll(async () => {
    peers = await Promise.all([0, 1].map(async () => startPeer({ replicas: 0 })))
    await connectAll(peers)
  })
  afterAll(async () => { await Promise.all(peers.map(stopPeer)) })

  const open = async (protocol: string): Promise<Stream> => peers[0].libp2p.dialProtocol(peers[1].libp2p.peerId, protocol, { signal: AbortSignal.timeout(10_000) })

  it('answers malformed and oversized messages with an error status and stays up', async () => {
    let s = await open(FETCH_PROTOCOL)
    await lpStream(s).write(Uint8Array.of(0x00, 0xff, 0xfe, 0x13))
    expect(await status(s)).toMatchObject({ status: 'error' })

    s = await open(FETCH_PROTOCOL)
    await lpStream(s).write(encodeRequestFrame({ cid: 'not a cid', window: 4 }))
    expect(await status(s)).toMatchObject({ status: 'error', message: expect.stringContaining('cid') })

    s = await open(FETCH_PROTOCOL)
    await lpStream(s).write(Uint8Array.of(0x07, 0xa0)) // unknown frame type
    expect(await status(s)).toMatchObject({ status: 'error' })

    // a length prefix announcing 100 MiB: rejected before any of it is buffered
    s = await open(FETCH_PROTOCOL)
    s.send(varint(100 * 1024 * 1024))
    s.send(randomBytes(1000))
    expect(await status(s)).toMatchObject({ status: 'error', message: expect.stringMatching(/length|large|exceed/i) })

    s = await open(PUSH_PROTOCOL)
    await lpStream(s).write(encodeRequestFrame({ cid: (await encodeBlocks('x', 1024)).cid, meta: 'nope', window: 4 }))
    expect(await status(s)).toMatchObject({ status: 'error' })

    s = await open(FETCH_PROTOCOL)
    await lpStream(s).write(encodeRequestFrame({ cid: (await encodeBlocks('never stored', 1024)).cid, window: 4 }))
    expect(await status(s)).toMatchObject({ status: 'not_found' })

    // not chosen as a replica, no claim: the push is refused
    s = await open(PUSH_PROTOCOL)
    await lpStream(s).write(encodeRequestFrame({ cid: (await encodeBlocks('unwanted', 1024)).cid, meta: { request: 'r', step: 's', output: 'o', index: null }, window: 4 }))
    expect(await status(s)).toMatchObject({ status: 'reject' })

    // still serving
    const { cid } = await peers[1].store.put({ ok: true })
    expect(await peers[0].store.get(cid, { holders: [peers[1].libp2p.peerId] })).toEqual({ ok: true })
  })

  it('finds a holder through the DHT when no holder is given and placement chose nobody', async () => {
    const { cid } = await peers[1].store.put({ viaDht: randomBytes(5000, 8) })
    let value: unknown
    await waitFor(async () => {
      try { value = await peers[0].store.get(cid, { signal: AbortSignal.timeout(5_000) }); return true } catch (err: any) {
        if (err.name !== 'ValueNotFoundError') throw err
        return false
      }
    }, 'provider record', 30_000)
    expect(value).toEqual({ viaDht: randomBytes(5000, 8) })
  })

  it('a push lands when the receiver accepts it and raises dstore:value-received', async () => {
    const q = await startPeer({ replicas: 0 }, { acceptPush: meta => meta.request === 'claimed' })
    try {
      await connectAll([peers[0], q])
      const got = new Promise<any>(resolve => { q.store.addEventListener('dstore:value-received', e => { resolve(e.detail) }, { once: true }) })
      const { cid } = await peers[0].store.put({ pushed: randomBytes(10_000) }, { pin: 'claimed' })
      peers[0].store.pushTo(q.libp2p.peerId, cid, { request: 'claimed', step: 's', output: 'o', index: 3 })
      const detail = await got
      expect(detail.cid.equals(cid)).toBe(true)
      expect(detail.meta.index).toBe(3)
      expect(detail.from.equals(peers[0].libp2p.peerId)).toBe(true)
      expect(q.store.stats().pinned).toBe(1)
      const { cid: c2 } = await peers[0].store.put('not claimed')
      await expect(peers[0].store.push(q.libp2p.peerId, c2, { request: 'other', step: 's', output: 'o', index: null })).rejects.toMatchObject({ name: 'PushRejectedError' })
      expect(await q.store.has(c2)).toBe(false)
      // awaited push: resolves once stored; a second push of the same value is answered "have"
      const { cid: c3 } = await peers[0].store.put({ awaited: randomBytes(3000, 4) })
      await peers[0].store.push(q.libp2p.peerId, c3, { request: 'claimed', step: 's', output: 'o', index: null })
      expect(await q.store.has(c3)).toBe(true)
      await peers[0].store.push(q.libp2p.peerId, c3, { request: 'claimed', step: 's', output: 'o', index: null })
    } finally { await stopPeer(q) }
  })

  it('a restarted peer with a data dir still serves its blocks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dstore-'))
    try {
      const first = await startPeer({ dataDir: dir, replicas: 0, chunkSize: 8 * 1024 })
      const value = { kept: randomBytes(40_000, 21) }
      const { cid } = await first.store.put(value)
      const key = first.key
      await stopPeer(first)
      const again = await startPeer({ dataDir: dir, replicas: 0, chunkSize: 8 * 1024 }, {}, key)
      try {
        expect(again.libp2p.peerId.equals(first.libp2p.peerId)).toBe(true)
        expect(again.store.stats().blocks).toBeGreaterThan(5)
        await connectAll([peers[0], again])
        expect(await peers[0].store.has(cid)).toBe(false)
        await waitFor(() => peers[0].libp2p.getPeers().some(p => p.equals(again.libp2p.peerId)), 'connected')
        expect(await peers[0].store.get(cid, { holders: [again.libp2p.peerId] })).toEqual(value)
      } finally { await stopPeer(again) }
    } finally { await rm(dir, { recursive: true, force: true }) }
  })
})
