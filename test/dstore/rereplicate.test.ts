import { afterAll, describe, expect, it } from 'vitest'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import type { CID } from 'multiformats/cid'

/** Dials every pair until each peer is connected to all others (redialling what a busy machine dropped). */
async function mesh (peers: TestPeer[]): Promise<void> {
  await waitFor(async () => {
    let full = true
    for (const p of peers) {
      for (const q of peers) {
        if (p === q || p.libp2p.getPeers().some(x => x.equals(q.libp2p.peerId))) continue
        full = false
        await p.libp2p.dial(q.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) }).catch(() => {})
      }
    }
    return full
  }, 'full mesh', 90_000)
}

/**
 * 8 peers, 2 replicas. Every value put at a producer lives on {producer} + its 2 replicas. One peer dies:
 * only values whose holder set held it may move, each exactly once, to one new holder.
 */
describe('re-replication after a peer death', () => {
  const peers: TestPeer[] = []
  const dead = new Set<string>()
  afterAll(async () => { await Promise.all(peers.filter(p => !dead.has(p.libp2p.peerId.toString())).map(stopPeer)) })

  it('moves only values whose replica set changed, once each', async () => {
    // membership as the scheduler gives it (every peer not known dead), not the connection list: a busy
    // machine can drop a connection for a moment, and placement must not change with it
    const ids: string[] = []
    for (let i = 0; i < 8; i++) {
      const p = await startPeer({ replicas: 2 }, { livePeers: () => ids.filter(x => x !== p.libp2p.peerId.toString() && !dead.has(x)).map(x => peerIdFromString(x)) })
      ids.push(p.libp2p.peerId.toString())
      peers.push(p)
    }
    await mesh(peers)
    const values: Array<{ cid: CID, holders: Set<string> }> = []
    for (let k = 0; k < 32; k++) {
      const producer = peers[k % 8]
      const { cid } = await producer.store.put(randomBytes(20_000, k + 1), { pin: 'r', provide: false })
      const replicas = producer.store.replicasFor(cid)
      values.push({ cid, holders: new Set([producer.libp2p.peerId.toString(), ...replicas.map(String)]) })
    }
    const holds = async (id: string, cid: CID): Promise<boolean> => peers.find(p => p.libp2p.peerId.toString() === id)!.store.has(cid)
    await waitFor(async () => {
      for (const v of values) for (const h of v.holders) if (!await holds(h, v.cid)) return false
      return true
    }, 'initial replication', 60_000)

    const victim = peers[5]
    const victimId = victim.libp2p.peerId.toString()
    dead.add(victimId)
    await stopPeer(victim)
    const survivors = peers.filter(p => p !== victim)

    const changed = new Set(values.filter(v => v.holders.has(victimId)).map(v => v.cid.toString()))
    expect(changed.size).toBeGreaterThan(0)
    expect(changed.size).toBeLessThan(values.length)
    const received: string[] = []
    for (const p of survivors) p.store.addEventListener('dstore:value-received', ev => { received.push(ev.detail.cid.toString()) })
    const sent0 = survivors.map(p => p.store.stats().pushesSent)

    const copies = await Promise.all(survivors.map(async p => p.store.rereplicate()))

    // one push per changed value (one surviving holder pushes; a failed push is retried), none for the others
    const sent = survivors.reduce((n, p, i) => n + p.store.stats().pushesSent - sent0[i], 0)
    expect(sent).toBeGreaterThanOrEqual(changed.size)
    expect(copies.reduce((a, b) => a + b, 0)).toBe(changed.size)
    await waitFor(() => received.length >= changed.size, 'copies landed', 60_000)
    expect(new Set(received)).toEqual(changed)
    expect(received).toHaveLength(changed.size)
    // every value is back on 3 live holders
    for (const v of values) {
      let n = 0
      for (const p of survivors) if (await p.store.has(v.cid)) n++
      expect(n, v.cid.toString()).toBe(3)
    }
    // a second run finds nothing to do
    const again = await Promise.all(survivors.map(async p => p.store.rereplicate()))
    expect(again.reduce((a, b) => a + b, 0)).toBe(0)
    expect(survivors.reduce((n, p, i) => n + p.store.stats().pushesSent - sent0[i], 0)).toBe(sent)
  }, 240_000)
})

/**
 * One surviving holder with several values to move: it pushes them one at a time, newest placement first,
 * and no faster than `rereplicateBytesPerSec`.
 */
describe('re-replication order and pace', () => {
  const peers: TestPeer[] = []
  const dead = new Set<string>()
  afterAll(async () => { await Promise.all(peers.filter(p => !dead.has(p.libp2p.peerId.toString())).map(stopPeer)) })

  it('newest first, one at a time, paced', async () => {
    const ids: string[] = []
    const rate = 200_000 // bytes per second
    for (let i = 0; i < 3; i++) {
      const p = await startPeer({ replicas: 1, rereplicateBytesPerSec: rate }, { livePeers: () => ids.filter(x => x !== p.libp2p.peerId.toString() && !dead.has(x)).map(x => peerIdFromString(x)) })
      ids.push(p.libp2p.peerId.toString())
      peers.push(p)
    }
    await mesh(peers)
    const [producer, q, r] = peers
    // values whose replica is r: they are the ones to move when r dies, and only the producer can push them
    const moving: CID[] = []
    for (let k = 0; moving.length < 4 && k < 64; k++) {
      const { cid } = await producer.store.put(randomBytes(20_000, 100 + k), { pin: 'o', provide: false })
      if (producer.store.replicasFor(cid)[0]?.equals(r.libp2p.peerId) === true) moving.push(cid)
      await new Promise(resolve => setTimeout(resolve, 3)) // distinct placement times
    }
    expect(moving).toHaveLength(4)
    await waitFor(async () => (await Promise.all(moving.map(async c => r.store.has(c)))).every(Boolean), 'replicated to r', 60_000)

    dead.add(r.libp2p.peerId.toString())
    await stopPeer(r)
    const received: string[] = []
    q.store.addEventListener('dstore:value-received', ev => { received.push(ev.detail.cid.toString()) })
    // the order pushes start in, at the pusher (each is awaited before the next starts)
    const network = (producer.store as any).network
    const push = network.push.bind(network)
    const started: string[] = []
    network.push = async (peer: any, cid: CID, ...rest: unknown[]) => { started.push(cid.toString()); return push(peer, cid, ...rest) }
    const t0 = Date.now()
    const copies = await producer.store.rereplicate()
    const elapsed = Date.now() - t0
    expect(copies).toBe(moving.length)
    await waitFor(() => received.length >= moving.length, 'copies landed at q', 30_000)
    expect(new Set(received)).toEqual(new Set(moving.map(String)))
    // newest placement first
    expect(started).toEqual(moving.map(String).reverse())
    // at least the bytes moved over the rate (the last value's wait included)
    expect(elapsed).toBeGreaterThanOrEqual(Math.floor(moving.length * 20_000 / rate * 1000) - 5)
  }, 120_000)
})
