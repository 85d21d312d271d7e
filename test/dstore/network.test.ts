import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import { equals } from 'uint8arrays/equals'
import { connectAll, randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import { blockKey } from '../../node/dstore/blocks.ts'
import { closestPeers } from '../../node/dstore/placement.ts'
import { FETCH_PROTOCOL } from '../../protocols/fetch/constants.ts'

describe('DStore on 4 real peers', () => {
  let peers: TestPeer[] = []
  const [A, B] = [0, 1]

  beforeAll(async () => {
    peers = await Promise.all([0, 1, 2, 3].map(async () => startPeer({ chunkSize: 64 * 1024 })))
    await connectAll(peers)
  })
  afterAll(async () => { await Promise.all(peers.map(stopPeer)) })

  /** A peer other than the producer that placement did not choose, so no push can reach it. */
  const outsider = (producer: number, cid: CID): TestPeer => {
    const replicas = peers[producer].store.replicasFor(cid)
    return peers.find((p, i) => i !== producer && !replicas.some(r => r.equals(p.libp2p.peerId)))!
  }
  const replicaPeers = (producer: number, cid: CID): TestPeer[] => {
    const replicas = peers[producer].store.replicasFor(cid)
    return peers.filter(p => replicas.some(r => r.equals(p.libp2p.peerId)))
  }

  it('a value put at A is read at D and verified; traffic counters move', async () => {
    const value = { name: 'x', data: randomBytes(300 * 1024, 7) } // chunked: 64 KiB chunks
    const { cid, size } = await peers[A].store.put(value, { pin: 'r1' })
    const reader = outsider(A, cid)
    const before = reader.traffic.snapshot()
    expect(size).toBeGreaterThan(300 * 1024)
    expect(await reader.store.has(cid)).toBe(false)
    const got = await reader.store.get(cid, { holders: [peers[A].libp2p.peerId] }) as any
    expect(got.name).toBe('x')
    expect(equals(got.data, value.data)).toBe(true)
    const after = reader.traffic.snapshot()
    const a = peers[A].libp2p.peerId.toString()
    expect(after.total.received - before.total.received).toBeGreaterThan(size)
    expect((after.peers[a]?.received ?? 0) - (before.peers[a]?.received ?? 0)).toBeGreaterThan(size)
    expect(after.protocols[FETCH_PROTOCOL]?.received ?? 0).toBeGreaterThan(size)
    expect(reader.store.stats().misses).toBeGreaterThanOrEqual(1)
  })

  it('pushes replicas to the closest peers, and they announce themselves', async () => {
    const { cid } = await peers[A].store.put({ replica: randomBytes(100 * 1024, 3) })
    const chosen = closestPeers(cid, peers.filter((_, i) => i !== A).map(p => p.libp2p.peerId), 2)
    expect(peers[A].store.replicasFor(cid).map(String).sort()).toEqual(chosen.map(String).sort())
    const holders = peers.filter(p => chosen.some(c => c.equals(p.libp2p.peerId)))
    await waitFor(async () => (await Promise.all(holders.map(async h => h.store.has(cid)))).every(Boolean), 'replicas')
    const other = peers.find((p, i) => i !== A && !holders.includes(p))
    expect(await other!.store.has(cid)).toBe(false)
  })

  it('concurrent gets of one CID share one transfer', async () => {
    const { cid } = await peers[B].store.put({ shared: randomBytes(200 * 1024, 5) }, { pin: 'r2' })
    const target = outsider(B, cid)
    const t0 = target.store.stats().transfers
    const served0 = peers[B].store.stats().served
    const results = await Promise.all(Array.from({ length: 8 }, async () => target.store.get(cid, { holders: [peers[B].libp2p.peerId] })))
    expect(results.every(r => equals((r as any).shared, (results[0] as any).shared))).toBe(true)
    expect(target.store.stats().transfers - t0).toBe(1)
    expect(peers[B].store.stats().served - served0).toBe(1)
  })

  it('a corrupted block at one holder is caught and the value comes from another', async () => {
    const value = { corrupt: randomBytes(150 * 1024, 11) }
    const { cid } = await peers[A].store.put(value, { pin: 'r3' })
    // a replica gets an honest copy, then one of its chunks is overwritten in its blockstore directly
    const bad = replicaPeers(A, cid)[0]
    await waitFor(async () => bad.store.has(cid), 'replica')
    const root = (await bad.store.local.getBlock(cid))!
    const chunk = (await import('../../node/dstore/blocks.ts')).parseChunkedRoot(cid, root)!.chunks[1]
    await bad.store.local.blocks.inner.put(chunk, randomBytes(64 * 1024, 99))
    const d = outsider(A, cid).store
    expect(await d.has(cid)).toBe(false)
    const f0 = d.stats().verificationFailures
    const got = await d.get(cid, { holders: [bad.libp2p.peerId, peers[A].libp2p.peerId] }) as any
    expect(equals(got.corrupt, value.corrupt)).toBe(true)
    expect(d.stats().verificationFailures - f0).toBe(1)
  })

  it('gossip traffic is counted at the connection level', async () => {
    const topic = 'dstore-test-topic'
    for (const p of peers) p.libp2p.services.pubsub.subscribe(topic)
    await waitFor(() => peers[A].libp2p.services.pubsub.getSubscribers(topic).length >= 3, 'gossip subscribers')
    const before = peers[A].traffic.snapshot()
    await peers[A].libp2p.services.pubsub.publish(topic, randomBytes(50_000, 2))
    await waitFor(() => {
      const after = peers[A].traffic.snapshot()
      const gs = Object.entries(after.protocols).filter(([k]) => k.includes('meshsub'))
      const gsBefore = Object.entries(before.protocols).filter(([k]) => k.includes('meshsub')).reduce((s, [, v]) => s + v.sent, 0)
      return after.total.sent - before.total.sent > 50_000 && gs.reduce((s, [, v]) => s + v.sent, 0) - gsBefore > 50_000
    }, 'gossip bytes counted')
  })

  it('after A is stopped the value is still read from a replica', async () => {
    const value = { survives: randomBytes(120 * 1024, 13) }
    const { cid } = await peers[A].store.put(value, { pin: 'r4' })
    const holders = replicaPeers(A, cid)
    await waitFor(async () => (await Promise.all(holders.map(async h => h.store.has(cid)))).every(Boolean), 'replicas')
    const aId = peers[A].libp2p.peerId
    const reader = outsider(A, cid)
    expect(await reader.store.has(cid)).toBe(false)
    await stopPeer(peers[A])
    await waitFor(() => !reader.libp2p.getPeers().some(p => p.equals(aId)), 'A gone')
    // the reader only knows A as holder: it falls back to placement (and the DHT)
    const got = await reader.store.get(cid, { holders: [aId] }) as any
    expect(equals(got.survives, value.survives)).toBe(true)
    expect(CID.asCID(cid)).not.toBeNull()
    expect(blockKey(cid)).toBeTypeOf('string')
  })
})
