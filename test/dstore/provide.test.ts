import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectAll, randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import type { CID } from 'multiformats/cid'

/**
 * Provider records only where someone will look the value up by CID alone: a value named in a readiness
 * event (put with `meta`) is found through the holders listed there, so neither its producer nor its replicas
 * announce it; a value put outside a request is announced by its producer and its replicas, unless the caller
 * said no one will look for it (`provide: false`).
 */
describe('DHT provide records', () => {
  let peers: TestPeer[] = []
  /** CIDs each peer announced, in call order */
  const provided = new Map<TestPeer, string[]>()
  const meta = { request: 'r', step: 's', output: 'o', index: null }

  beforeAll(async () => {
    peers = await Promise.all([0, 1, 2].map(async () => startPeer({ replicas: 1, chunkSize: 64 * 1024 })))
    await connectAll(peers)
    for (const p of peers) {
      const calls: string[] = []
      provided.set(p, calls)
      // counted where DStore calls the DHT; the record itself is not needed here
      p.libp2p.contentRouting.provide = async (cid: CID) => { calls.push(cid.toString()) }
    }
  })
  afterAll(async () => { await Promise.all(peers.map(stopPeer)) })

  /** Puts at peer 0 and waits until the value landed at its replica (the point where a replica provides). */
  async function putAndReplicate (value: unknown, opts: Parameters<TestPeer['store']['put']>[1]): Promise<{ cid: CID, replica: TestPeer }> {
    const producer = peers[0]
    const landed = new Map<TestPeer, Promise<void>>()
    let cid: CID | undefined
    for (const p of peers.slice(1)) {
      landed.set(p, new Promise(resolve => {
        const on = (ev: CustomEvent<{ cid: CID }>): void => {
          if (cid != null && !ev.detail.cid.equals(cid)) return
          p.store.removeEventListener('dstore:value-received', on)
          resolve()
        }
        p.store.addEventListener('dstore:value-received', on)
      }))
    }
    cid = (await producer.store.put(value as any, opts)).cid
    const [replicaId] = producer.store.replicasFor(cid)
    const replica = peers.find(p => p.libp2p.peerId.equals(replicaId))!
    await landed.get(replica)
    await waitFor(async () => replica.store.has(cid!), 'replica holds the value')
    return { cid, replica }
  }

  const count = (p: TestPeer, cid: CID): number => provided.get(p)!.filter(c => c === cid.toString()).length
  const everywhere = (cid: CID): number => peers.reduce((n, p) => n + count(p, cid), 0)

  it('a value of a request (named in its readiness event) gets no provider record, at the producer or its replica', async () => {
    const { cid, replica } = await putAndReplicate({ big: randomBytes(100_000, 1) }, { pin: 'r', meta })
    expect(await replica.store.has(cid)).toBe(true)
    expect(everywhere(cid)).toBe(0)
  })

  it('a value put outside a request is announced by its producer and by its replica, once each', async () => {
    const { cid, replica } = await putAndReplicate({ big: randomBytes(100_000, 2) }, {})
    expect(count(peers[0], cid)).toBe(1)
    expect(count(replica, cid)).toBe(1)
    expect(everywhere(cid)).toBe(2)
  })

  it('provide: false holds at the replica too', async () => {
    const { cid, replica } = await putAndReplicate({ big: randomBytes(100_000, 3) }, { provide: false })
    expect(await replica.store.has(cid)).toBe(true)
    expect(everywhere(cid)).toBe(0)
  })

  it('provide: true on a value of a request is honoured by producer and replica', async () => {
    const { cid, replica } = await putAndReplicate({ big: randomBytes(100_000, 4) }, { pin: 'r', meta, provide: true })
    expect(count(peers[0], cid)).toBe(1)
    expect(count(replica, cid)).toBe(1)
  })

  it('a small value of a request travels in its event: no push, no record', async () => {
    const sent0 = peers[0].store.stats().pushesSent
    const { cid, inline } = await peers[0].store.put({ small: 1 }, { pin: 'r', meta })
    expect(inline).toBeDefined()
    expect(peers[0].store.stats().pushesSent).toBe(sent0)
    expect(everywhere(cid)).toBe(0)
  })
})
