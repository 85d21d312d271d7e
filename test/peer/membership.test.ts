import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import * as dagCbor from '@ipld/dag-cbor'
import { lpStream } from '@libp2p/utils'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { MemberTable, pickAddrs } from '../../node/dscheduler/member-table.ts'
import { ProbeMembership, ringNeighbours } from '../../node/dscheduler/membership.ts'
import { checkProbeMessage, PROBE_PROTOCOL } from '../../protocols/probe/index.ts'

const A = '12D3KooWAt5itJZxinaxragKoR6kjosPW6BYwNAYVrVowp9vnL3v'
const B = '12D3KooWF7L3rGotheJ6jLg15aJPkLtzS7dsEBmPDGsLmcy7i1wV'
const SELF = '12D3KooWMxdh42YRcSvyZxbWFompbNkM76VE4S2mteSiFVwZw4Ha'

describe('member table (SWIM update rules)', () => {
  it('orders news by (incarnation, version): suspect beats alive, dead beats suspect, a refutation beats both', () => {
    const t = new MemberTable(SELF, 100)
    expect(t.apply({ peer: A, inc: 5, ver: 0, state: 'alive' })).toMatchObject({ from: undefined, to: 'alive' })
    expect(t.apply({ peer: A, inc: 5, ver: 0, state: 'suspect' })).toMatchObject({ from: 'alive', to: 'suspect' })
    expect(t.apply({ peer: A, inc: 5, ver: 0, state: 'alive' })).toBeUndefined() // same version: still suspect
    expect(t.apply({ peer: A, inc: 5, ver: 0, state: 'dead' })).toMatchObject({ from: 'suspect', to: 'dead' })
    expect(t.apply({ peer: A, inc: 5, ver: 1, state: 'alive' })).toMatchObject({ from: 'dead', to: 'alive', restarted: false })
    expect(t.apply({ peer: A, inc: 4, ver: 9, state: 'dead' })).toBeUndefined() // an older incarnation
    expect(t.apply({ peer: A, inc: 6, ver: 0, state: 'alive' })).toMatchObject({ from: 'alive', to: 'alive', restarted: true })
    expect(t.get(A)).toMatchObject({ inc: 6, ver: 0, state: 'alive' })
  })

  it('news about an unknown peer adds it only when alive; first-hand contact revives a buried peer here', () => {
    const t = new MemberTable(SELF, 100)
    expect(t.apply({ peer: B, inc: 1, ver: 0, state: 'dead' })).toBeUndefined()
    expect(t.get(B)).toBeUndefined()
    t.apply({ peer: B, inc: 1, ver: 0, state: 'alive' })
    t.apply({ peer: B, inc: 1, ver: 0, state: 'dead' })
    expect(t.apply({ peer: B, inc: 1, ver: 0, state: 'alive' }, true)).toMatchObject({ from: 'dead', to: 'alive' })
  })

  it('refutes a suspicion of itself with a higher version, and spreads it', () => {
    const t = new MemberTable(SELF, 100)
    t.apply({ peer: A, inc: 1, ver: 0, state: 'alive' })
    t.news(undefined, 100) // drain
    expect(t.apply({ peer: SELF, inc: 100, ver: 3, state: 'suspect' })).toBeUndefined()
    expect(t.own()).toEqual({ inc: 100, ver: 4 })
    expect(t.news()).toContainEqual({ peer: SELF, inc: 100, ver: 4, state: 'alive' })
    // a suspicion of a previous incarnation is not about this process
    t.apply({ peer: SELF, inc: 99, ver: 10, state: 'dead' })
    expect(t.own()).toEqual({ inc: 100, ver: 4 })
  })

  it('piggybacks each piece of news a bounded number of times', () => {
    const t = new MemberTable(SELF, 100)
    t.apply({ peer: A, inc: 1, ver: 0, state: 'alive' })
    let sent = 0
    for (let i = 0; i < 100; i++) sent += t.news().filter(u => u.peer === A).length
    expect(sent).toBeGreaterThan(0)
    expect(sent).toBeLessThanOrEqual(3 * Math.ceil(Math.log2(3)))
  })

  it('the first message to a member carries the live member list, later ones only news', () => {
    const t = new MemberTable(SELF, 100)
    const C = '12D3KooWQ8BLTqAScW7pAB58F9bNKLseADFoWWCFqVzguYyD9qYZ'
    for (const p of [A, B, C]) t.apply({ peer: p, inc: 1, ver: 0, state: 'alive' })
    t.apply({ peer: C, inc: 1, ver: 0, state: 'dead' })
    for (let i = 0; i < 50; i++) t.news() // send the queued news until it is spent
    expect(t.news(A)).toEqual([{ peer: B, inc: 1, ver: 0, state: 'alive' }])
    expect(t.news(A)).toEqual([])
  })

  it('alive news carries where the member listens, so a member heard of is dialled without a DHT lookup', () => {
    const t = new MemberTable(SELF, 100)
    t.apply({ peer: A, inc: 1, ver: 0, state: 'alive' })
    t.setAddrs(A, ['/ip4/127.0.0.1/tcp/4001/p2p/' + A, '/ip4/10.0.0.5/tcp/4001'])
    // routable first, /p2p stripped
    expect(t.addrsOf(A)).toEqual(['/ip4/10.0.0.5/tcp/4001', '/ip4/127.0.0.1/tcp/4001'])
    expect(t.news(B)).toContainEqual({ peer: A, inc: 1, ver: 0, state: 'alive', addrs: ['/ip4/10.0.0.5/tcp/4001', '/ip4/127.0.0.1/tcp/4001'] })
    // news about a new member brings its addresses; later news does not overwrite what we know
    t.apply({ peer: B, inc: 1, ver: 0, state: 'alive', addrs: ['/ip4/10.0.0.6/tcp/1'] })
    expect(t.addrsOf(B)).toEqual(['/ip4/10.0.0.6/tcp/1'])
    t.apply({ peer: B, inc: 1, ver: 1, state: 'alive', addrs: ['/ip4/10.9.9.9/tcp/1'] })
    expect(t.addrsOf(B)).toEqual(['/ip4/10.0.0.6/tcp/1'])
    // a new incarnation may listen elsewhere
    t.apply({ peer: B, inc: 2, ver: 0, state: 'alive', addrs: ['/ip4/10.0.0.7/tcp/2'] })
    expect(t.addrsOf(B)).toEqual(['/ip4/10.0.0.7/tcp/2'])
    // a suspicion carries no addresses (but its age)
    t.apply({ peer: B, inc: 2, ver: 0, state: 'suspect' })
    expect(t.news().find(u => u.peer === B)).toMatchObject({ peer: B, inc: 2, ver: 0, state: 'suspect' })
    expect(t.news().find(u => u.peer === B)?.addrs).toBeUndefined()
    expect(pickAddrs(['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/1', '/ip6/::1/tcp/2', '/ip4/1.2.3.4/tcp/3'])).toEqual(['/ip4/1.2.3.4/tcp/3', '/ip4/127.0.0.1/tcp/1'])
  })

  it('a suspicion travels with its age, so a peer that hears it late ends it when its first suspecter does', () => {
    let now = 10_000
    const t = new MemberTable(SELF, 100, () => now)
    t.apply({ peer: A, inc: 1, ver: 0, state: 'alive' })
    t.news(undefined, 100) // drain
    now += 50
    // heard 700 ms after it was raised elsewhere: it began at 9350 by our clock
    expect(t.apply({ peer: A, inc: 1, ver: 0, state: 'suspect', age: 700 })).toMatchObject({ from: 'alive', to: 'suspect' })
    expect(t.get(A)?.since).toBe(now - 700)
    now += 300
    expect(t.news().find(u => u.peer === A)).toEqual({ peer: A, inc: 1, ver: 0, state: 'suspect', age: 1000 })
    // a suspicion raised here starts now; the verdict's time is when it was taken here
    const C = '12D3KooWQ8BLTqAScW7pAB58F9bNKLseADFoWWCFqVzguYyD9qYZ'
    t.apply({ peer: C, inc: 1, ver: 0, state: 'alive' })
    t.apply({ peer: C, inc: 1, ver: 0, state: 'suspect' })
    expect(t.news(undefined, 100).find(u => u.peer === C)).toMatchObject({ state: 'suspect', age: 0 })
    now += 10
    t.apply({ peer: C, inc: 1, ver: 0, state: 'dead' })
    expect(t.get(C)).toMatchObject({ state: 'dead', since: now })
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'suspect', age: -1 }] })).toMatch(/age/)
  })

  it('probes along a ring in peer-id order: the next member after self, wrapping around; watches the one before', () => {
    // A < B < SELF: SELF's successor wraps to A, its predecessor is B; A's successor is B and its predecessor wraps to SELF
    expect(ringNeighbours(SELF, [A, B])).toEqual({ successor: A, predecessor: B })
    expect(ringNeighbours(A, [B, SELF])).toEqual({ successor: B, predecessor: SELF })
    expect(ringNeighbours(B, [A, SELF])).toEqual({ successor: SELF, predecessor: A })
    expect(ringNeighbours(A, [B])).toEqual({ successor: B, predecessor: B })
    expect(ringNeighbours(A, [])).toEqual({})
  })

  it('rejects malformed probe messages', () => {
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [] })).toBeUndefined()
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [], quiet: true })).toBeUndefined()
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [], quiet: 'yes' })).toMatch(/quiet/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: -1, ver: 0, up: [] })).toMatch(/inc/)
    expect(checkProbeMessage({ t: 'req', seq: 1, target: 'nope', timeoutMs: 100, up: [] })).toMatch(/target/)
    expect(checkProbeMessage({ t: 'req', seq: 1, target: A, timeoutMs: 10 ** 9, up: [] })).toMatch(/timeoutMs/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'zombie' }] })).toMatch(/state/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: Array(100).fill({ peer: A, inc: 1, ver: 0, state: 'alive' }) })).toMatch(/more than/)
    expect(checkProbeMessage([1, 2])).toMatch(/not a map/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'alive', addrs: ['/ip4/1.2.3.4/tcp/1'] }] })).toBeUndefined()
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'alive', addrs: ['/a', '/b', '/c'] }] })).toMatch(/addrs/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'alive', addrs: ['/' + 'x'.repeat(200)] }] })).toMatch(/addrs/)
    expect(checkProbeMessage({ t: 'ping', seq: 1, inc: 1, ver: 0, up: [{ peer: A, inc: 1, ver: 0, state: 'alive', addrs: 'nope' }] })).toMatch(/addrs/)
  })
})

describe('probe membership over libp2p (3 peers in one process)', () => {
  const nodes: DflowLibp2p[] = []
  const members: ProbeMembership[] = []
  const deaths: Array<{ at: string, dead: string }> = []

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const node = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
      await node.start()
      const m = new ProbeMembership(node.peerId.toString(), node, { probeIntervalMs: 200, failureTimeoutMs: 1500 }, defaultLogger().forComponent(`test:membership:${i}`))
      m.addEventListener('membership:peer-dead', ev => { deaths.push({ at: node.peerId.toString(), dead: ev.detail }) })
      await m.start()
      nodes.push(node)
      members.push(m)
    }
    await nodes[1].dial(nodes[0].getMultiaddrs()[0])
    await nodes[2].dial(nodes[0].getMultiaddrs()[0])
  })

  afterAll(async () => {
    for (const m of members) await m.stop()
    for (const n of nodes) await n.stop()
  })

  async function until (what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  it('learns every member (news spreads to peers not connected to each other) with its incarnation', async () => {
    const ids = nodes.map(n => n.peerId.toString()).sort()
    await until('everyone lists everyone', () => members.every(m => m.live().join() === ids.join()))
    for (const m of members) {
      for (const other of members) expect(m.incarnationOf(other.view().self)).toBe(other.incarnation)
    }
  })

  it('answers garbage on the probe protocol by closing the stream, and stays up', async () => {
    const stream = await nodes[1].dialProtocol(nodes[0].peerId, PROBE_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(dagCbor.encode({ t: 'ping', seq: 'x' }))
    await expect(lp.read({ signal: AbortSignal.timeout(5000) })).rejects.toThrow()
    expect(members[0].isLive(nodes[1].peerId.toString())).toBe(true)
  })

  it('a quiet ping (a one-way heartbeat) gets no answer; the next ping on the stream does', async () => {
    const stream = await nodes[1].dialProtocol(nodes[0].peerId, PROBE_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(dagCbor.encode({ t: 'ping', seq: 1, inc: members[1].incarnation, ver: 0, up: [], quiet: true }))
    await lp.write(dagCbor.encode({ t: 'ping', seq: 2, inc: members[1].incarnation, ver: 0, up: [] }))
    const answer = dagCbor.decode<{ t: string, seq: number }>((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
    expect(answer).toMatchObject({ t: 'ack', seq: 2 })
    await stream.close()
  })

  it('a stopped peer is declared dead by every other, and stays dead', async () => {
    const gone = nodes[2].peerId.toString()
    await members[2].stop()
    await nodes[2].stop()
    await until('both others bury it', () => members.slice(0, 2).every(m => !m.isLive(gone)))
    expect(deaths.filter(d => d.dead === gone).map(d => d.at).sort()).toEqual(nodes.slice(0, 2).map(n => n.peerId.toString()).sort())
    expect(members[0].live()).toEqual(nodes.slice(0, 2).map(n => n.peerId.toString()).sort())
    expect(members[0].lastHeard(gone)).toBeLessThanOrEqual(Date.now())
  })
})
