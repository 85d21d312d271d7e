import { afterEach, describe, expect, it, vi } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultLogger } from '@libp2p/logger'
import { ProbeMembership } from '../../node/dscheduler/membership.ts'
import { MIN_MEMBER_LINKS } from '../../node/dscheduler/membership-types.ts'
import { SimNet, fakeLibp2p } from './fixtures/sim-net.ts'

/**
 * Direct links between members on a simulated network that connects two peers only once one has sent the other
 * something (fake timers: the protocol's arithmetic, not this machine's speed). Every peer first knows only the
 * bootstrap peer, as in a testnet: SWIM itself would then link each peer to its ring neighbours and the
 * bootstrap peer, three links, and a peer hears gossip through those alone.
 */
describe('membership links (simulated network, fake timers)', () => {
  const members: ProbeMembership[] = []

  afterEach(async () => {
    for (const m of members) await m.stop()
    members.length = 0
    vi.useRealTimers()
  })

  async function form (n: number, net: SimNet): Promise<string[]> {
    const keys = await Promise.all(Array.from({ length: n }, async () => await generateKeyPair('Ed25519')))
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'Date'] })
    const ids = new Map(keys.map(k => { const id = peerIdFromPrivateKey(k); return [id.toString(), id] }))
    const peers = [...ids.keys()]
    for (const p of peers.slice(1)) net.link(peers[0], p)
    for (const self of peers) {
      members.push(new ProbeMembership(self, fakeLibp2p(self, net, ids), { probeIntervalMs: 1000, failureTimeoutMs: 5000 }, defaultLogger().forComponent('test:links'), net.sender(self)))
    }
    for (const m of members) await m.start()
    await vi.advanceTimersByTimeAsync(60_000)
    for (const m of members) expect(m.live()).toHaveLength(n)
    return peers
  }

  it.each([6, 9])('%i peers joined through one: each ends up linked to at least MIN_MEMBER_LINKS members, and not to all', async n => {
    const net = new SimNet(true)
    const peers = await form(n, net)
    const degrees = peers.map(p => net.linkedTo(p).length)
    for (const d of degrees) expect(d).toBeGreaterThanOrEqual(Math.min(MIN_MEMBER_LINKS, n - 1))
    // the bootstrap peer is linked to all; the others stop greeting once they have enough
    expect(degrees.slice(1).some(d => d < n - 1)).toBe(true)
  })

  it('a settled network greets no one: at rest only one-way heartbeats are sent', async () => {
    const net = new SimNet(true)
    await form(6, net)
    const from = Date.now()
    const links = net.links.size
    await vi.advanceTimersByTimeAsync(20_000)
    expect(net.pings.filter(x => x.at >= from)).toEqual([])
    expect(net.links.size).toBe(links)
  })
})
