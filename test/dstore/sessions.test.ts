import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { equals } from 'uint8arrays/equals'
import { connectAll, randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import { FETCH_PROTOCOL } from '../../protocols/fetch/constants.ts'
import { encodeBlocks } from '../../node/dstore/blocks.ts'
import type { FetchSessions } from '../../protocols/fetch/sessions.ts'

const sessionsOf = (p: TestPeer): FetchSessions => (p.store as any).network.sessions
/** The holder's inbound fetch streams from `from`. */
const fetchStreams = (holder: TestPeer, from: TestPeer): number => holder.libp2p.getConnections(from.libp2p.peerId)
  .flatMap(c => c.streams).filter(s => s.protocol === FETCH_PROTOCOL && s.status === 'open').length

describe('kept fetch streams', () => {
  let a: TestPeer
  let b: TestPeer
  beforeAll(async () => {
    // small chunks and window: credit frames flow, and some are left over when a transfer ends
    a = await startPeer({ replicas: 0, chunkSize: 8 * 1024, window: 2 })
    b = await startPeer({ replicas: 0, chunkSize: 8 * 1024, window: 2 })
    await connectAll([a, b])
  })
  afterAll(async () => { await stopPeer(a); await stopPeer(b) })

  it('a second fetch from the same holder takes the stream the first one used', async () => {
    const v1 = randomBytes(100_000, 1)
    const v2 = { second: randomBytes(50_000, 2) }
    const { cid: c1 } = await a.store.put(v1)
    const { cid: c2 } = await a.store.put(v2)
    const r0 = sessionsOf(b).reused
    expect(equals(await b.store.get(c1, { holders: [a.libp2p.peerId] }) as Uint8Array, v1)).toBe(true)
    expect(await b.store.get(c2, { holders: [a.libp2p.peerId] })).toEqual(v2)
    expect(sessionsOf(b).reused - r0).toBe(1)
    expect(a.store.stats().served).toBeGreaterThanOrEqual(2)
    // one stream carried both
    await waitFor(() => fetchStreams(a, b) === 1, 'one kept fetch stream at the holder')
    // a value the holder lacks: not_found over the kept stream (which is then dropped); the next fetch works
    const { cid: missing } = await encodeBlocks({ never: 'stored' }, 1024)
    await expect(sessionsOf(b).fetch(a.libp2p.peerId, missing, { putBlock: async () => {} }, AbortSignal.timeout(5_000)))
      .rejects.toMatchObject({ name: 'RemoteStatusError', status: 'not_found' })
    const v3 = { third: randomBytes(30_000, 3) }
    const { cid: c3 } = await a.store.put(v3)
    expect(await b.store.get(c3, { holders: [a.libp2p.peerId] })).toEqual(v3)
  })

  it('a kept stream the holder closed meanwhile is replaced: the fetch still succeeds', async () => {
    const { cid: c1 } = await a.store.put({ before: randomBytes(20_000, 4) })
    await b.store.get(c1, { holders: [a.libp2p.peerId] })
    await waitFor(() => fetchStreams(a, b) >= 1, 'a kept stream')
    // the holder drops its side (as after its idle timeout or a restart of its handler)
    for (const conn of a.libp2p.getConnections(b.libp2p.peerId)) {
      for (const s of conn.streams) if (s.protocol === FETCH_PROTOCOL) s.abort(new Error('dropped by the test'))
    }
    const r0 = sessionsOf(b).reused
    const value = { after: randomBytes(40_000, 5) }
    const { cid: c2 } = await a.store.put(value)
    expect(await b.store.get(c2, { holders: [a.libp2p.peerId] })).toEqual(value)
    expect(sessionsOf(b).reused - r0).toBe(0)
  })
})
