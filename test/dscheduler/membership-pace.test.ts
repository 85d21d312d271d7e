import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultLogger } from '@libp2p/logger'
import { ProbeMembership, ringNeighbours } from '../../node/dscheduler/membership.ts'
import type { PeerId } from '@libp2p/interface'
import { SimNet, fakeLibp2p } from './fixtures/sim-net.ts'

/**
 * The membership's pace and failure detection on a simulated network under fake timers: every exchange is
 * answered at once (a microtask), a frozen peer never answers (the prober's timer runs out), so every time below
 * is the protocol's own arithmetic, not this machine's speed.
 */
describe('membership pace (simulated network, fake timers)', () => {
  const net = new SimNet()
  let ids: Map<string, PeerId>
  let members: Map<string, ProbeMembership>
  const deadAt = new Map<string, number>()

  beforeEach(async () => {
    const keys = await Promise.all(Array.from({ length: 5 }, async () => await generateKeyPair('Ed25519')))
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'Date'] })
    net.targets.clear(); net.frozen.clear(); net.pings.length = 0; deadAt.clear()
    ids = new Map(keys.map(k => { const id = peerIdFromPrivateKey(k); return [id.toString(), id] }))
    members = new Map()
    for (const self of ids.keys()) {
      const m = new ProbeMembership(self, fakeLibp2p(self, net, ids), { probeIntervalMs: 1000, failureTimeoutMs: 5000 }, defaultLogger().forComponent('test:pace'), net.sender(self))
      m.addEventListener('membership:peer-dead', ev => { deadAt.set(`${self} ${ev.detail}`, Date.now()) })
      members.set(self, m)
    }
    for (const m of members.values()) await m.start()
    // formation, then long enough for every piece of join news to be spent: a settled network
    await vi.advanceTimersByTimeAsync(60_000)
    for (const m of members.values()) expect(m.live()).toHaveLength(5)
  })

  afterEach(async () => {
    for (const m of members.values()) await m.stop()
    vi.useRealTimers()
  })

  const peers = (): string[] => [...ids.keys()].sort()
  const successor = (p: string): string => ringNeighbours(p, peers().filter(o => o !== p)).successor as string
  /** what one peer sent its successor since `from` (pings and one-way heartbeats), in time order */
  const rounds = (p: string, from: number): number[] =>
    [...net.pings, ...net.beats].filter(x => x.from === p && x.to === successor(p) && x.at >= from).map(x => x.at).sort((a, b) => a - b)
  /** gaps between one peer's successive rounds since `from` */
  const gaps = (p: string, from: number): number[] => {
    const at = rounds(p, from)
    return at.slice(1).map((t, i) => t - at[i])
  }

  it('at rest, a one-way heartbeat to the successor every 2 s, and nothing else', async () => {
    const from = Date.now()
    await vi.advanceTimersByTimeAsync(20_000)
    for (const p of peers()) {
      expect(gaps(p, from).length).toBeGreaterThanOrEqual(9)
      expect(new Set(gaps(p, from))).toEqual(new Set([2000]))
    }
    // no ping (each wants an answer), no greeting, no news ping: every watcher got its heartbeats in time
    expect(net.pings.filter(x => x.at >= from)).toEqual([])
    expect(net.beats.filter(x => x.at >= from).length).toBeLessThanOrEqual(5 * 11)
  })

  it('news brings the next probe forward, and probes run every 1 s while a suspect or news exists', async () => {
    // news: a peer joined (one nobody can reach: it will be suspected, then buried, all of it news). p is the
    // peer right before it on the ring, so p's own probes suspect it and p stays busy until it is dead (another
    // peer would spend the join news and rest while a third suspects the ghost)
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const p = ringNeighbours(ghost, peers()).predecessor as string
    // wait for one of p's rest heartbeats, then 300 ms
    const before = net.beats.length
    while (!net.beats.slice(before).some(x => x.from === p)) await vi.advanceTimersByTimeAsync(50)
    const last = Date.now()
    await vi.advanceTimersByTimeAsync(300)
    net.targets.get(p)?.heard(successor(p), [{ peer: ghost, inc: 1, ver: 0, state: 'alive' }])
    await vi.advanceTimersByTimeAsync(800)
    // at rest p's next probe would be at last + 2000; the news brought it to last + 1000
    // (a full ping: news rides on the answers too)
    const next = net.pings.find(x => x.from === p && x.at > last)
    expect(next?.at).toBe(last + 1000)
    expect(net.beats.filter(x => x.from === p && x.at > last)).toEqual([])
    // while the ghost is news, then a suspect, then news again (dead): 1 s between rounds, each a full ping
    const from = Date.now()
    await vi.advanceTimersByTimeAsync(4000)
    // over the 3 s the ghost is surely a suspect or fresh news (p's successor is the ghost in its own view until it
    // is dead): rounds are full pings 1 s apart; at rest this would be one or two heartbeats and no ping
    // until the ghost is dead here (and after, while that news is spent), p is busy: full pings, no heartbeat
    const ghostView = (): { state: string, since: number } | undefined => members.get(p)?.view().members.find(m => m.peerId === ghost)
    expect(ghostView()?.state).toBe('dead')
    const deadAt = ghostView()?.since as number
    const busy = (x: { from: string, at: number }): boolean => x.from === p && x.at >= from && x.at <= deadAt
    expect(net.pings.filter(x => busy(x) && (x.to === successor(p) || x.to === ghost)).length).toBeGreaterThanOrEqual(Math.floor((deadAt - from) / 1000))
    expect(net.beats.filter(busy)).toEqual([])
    expect(members.get(p)?.view().members.find(m => m.peerId === ghost)?.state).toBe('dead')
    // and back to rest once the news is spent
    await vi.advanceTimersByTimeAsync(60_000)
    const settled = Date.now()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(new Set(gaps(p, settled))).toEqual(new Set([2000]))
  })

  it('a peer that doubts itself (local health above 0) probes with full pings until answers bring it back to 0, then rests', async () => {
    const [p] = peers()
    const m = members.get(p) as ProbeMembership
    // as a peer is left after a burst of load (its probes unanswered even through others, or suspected itself),
    // once the news of it is spent: at rest, with nothing else to make it busy
    ;(m as unknown as { health: number }).health = 3
    expect(m.view().health).toBe(3)
    const from = Date.now()
    await vi.advanceTimersByTimeAsync(20_000)
    expect(m.view().health).toBe(0)
    expect(net.pings.filter(x => x.from === p && x.to === successor(p) && x.at >= from).length).toBeGreaterThan(0)
    await vi.advanceTimersByTimeAsync(30_000)
    const settled = Date.now()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(net.pings.filter(x => x.from === p && x.at >= settled)).toEqual([])
    expect(new Set(gaps(p, settled))).toEqual(new Set([2000]))
  })

  it('a watcher whose timeouts were stretched by slow round trips watches at the rest pace again once they are gone', async () => {
    const victim = peers()[2]
    const watcher = peers()[3]
    // a burst of load: a 5 s round trip stretches the watcher's timeouts 9x; it halves every 2 s
    net.targets.get(watcher)?.rtt?.(5000)
    expect(members.get(watcher)?.view().stretch).toBe(9)
    await vi.advanceTimersByTimeAsync(12_000)
    expect(members.get(watcher)?.view().stretch).toBe(1)
    const before = net.beats.length
    while (!net.beats.slice(before).some(x => x.from === victim && x.to === watcher)) await vi.advanceTimersByTimeAsync(10)
    const frozenAt = Date.now()
    net.frozen.add(victim)
    await vi.advanceTimersByTimeAsync(10_000)
    const verdicts = peers().filter(p => p !== victim).map(p => deadAt.get(`${p} ${victim}`))
    expect(verdicts.every(t => t !== undefined)).toBe(true)
    expect(Math.max(...verdicts.map(t => (t as number) - frozenAt))).toBeLessThanOrEqual(4700 + 5)
  })

  it('a frozen peer is dead at every other within 5 s, whatever the phase of its heartbeats', async () => {
    const victim = peers()[2]
    const watcher = peers()[3] // the victim's successor, which watches its heartbeats
    expect(successor(victim)).toBe(watcher)
    // the worst phase: frozen just after a heartbeat reached its watcher, so the silence starts a whole rest period later
    const before = net.beats.length
    while (!net.beats.slice(before).some(x => x.from === victim && x.to === watcher)) await vi.advanceTimersByTimeAsync(10)
    const frozenAt = Date.now()
    net.frozen.add(victim)
    await vi.advanceTimersByTimeAsync(8000)
    const verdicts = peers().filter(p => p !== victim).map(p => deadAt.get(`${p} ${victim}`))
    expect(verdicts.every(t => t !== undefined)).toBe(true)
    const worst = Math.max(...verdicts.map(t => (t as number) - frozenAt))
    // a rest period and its grace (2.2 s) + direct timeout (0.5 s) + indirect timeout (1 s) + suspicion (1 s): 4.7 s,
    // 0.3 s of the 5 s failure timeout kept for late timers; the fake clock adds 1 ms to a zero-delay timer set while
    // timers run (the verdict's setImmediate)
    expect(worst).toBeLessThanOrEqual(4700 + 5)
    expect(worst).toBeGreaterThan(4000)
  })
})
