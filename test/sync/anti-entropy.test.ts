import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultLogger } from '@libp2p/logger'
import { TypedEventEmitter, type PeerId } from '@libp2p/interface'
import { AntiEntropy, type AntiEntropyComponents } from '../../node/dscheduler/anti-entropy.ts'

let ids: PeerId[] = []
beforeAll(async () => { ids = await Promise.all([0, 1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')))) })
afterEach(() => { vi.useRealTimers() })

function setup (over: Partial<AntiEntropyComponents> = {}): { ae: AntiEntropy, calls: string[], state: { active: boolean }, net: TypedEventEmitter<any>, members: TypedEventEmitter<any> } {
  const calls: string[] = []
  const state = { active: false }
  const net = new TypedEventEmitter<any>()
  const members = new TypedEventEmitter<any>()
  const ae = new AntiEntropy({
    self: ids[0].toString(),
    sync: { exchange: async peer => { calls.push(peer.toString()); return { requests: 0, sent: 0, received: 0, rejected: 0 } } },
    active: () => state.active,
    livePeers: () => ids.map(String),
    libp2p: net as any,
    membership: members,
    logger: defaultLogger(),
    ...over
  }, { intervalMs: 1000, jitter: 0.2 })
  return { ae, calls, state, net, members }
}

describe('AntiEntropy', () => {
  it('an idle peer arms no timer and exchanges nothing, not even when peers connect', async () => {
    vi.useFakeTimers()
    const { ae, calls, net, members } = setup()
    ae.start()
    expect(ae.scheduled).toBe(false)
    net.safeDispatchEvent('peer:connect', { detail: ids[1] })
    members.safeDispatchEvent('membership:peer-alive', { detail: ids[2].toString() })
    await vi.advanceTimersByTimeAsync(10_000)
    expect(calls).toEqual([])
    expect(vi.getTimerCount()).toBe(0)
    ae.stop()
  })

  it('exchanges about once a second with another live peer while requests are unfinished, then stops', async () => {
    vi.useFakeTimers()
    const { ae, calls, state } = setup()
    ae.start()
    state.active = true
    ae.wake()
    ae.wake() // idempotent: one timer
    expect(vi.getTimerCount()).toBe(1)
    await vi.advanceTimersByTimeAsync(10_000)
    // jitter 0.2: each wait is 800-1200 ms, so 10 s hold 8 to 12 rounds
    expect(calls.length).toBeGreaterThanOrEqual(8)
    expect(calls.length).toBeLessThanOrEqual(12)
    expect(calls).not.toContain(ids[0].toString())
    state.active = false
    const n = calls.length
    await vi.advanceTimersByTimeAsync(10_000)
    expect(calls.length).toBe(n)
    expect(ae.scheduled).toBe(false)
    ae.stop()
  })

  it('exchanges at once with a peer that connects or comes back, one exchange per peer at a time', async () => {
    const { ae, calls, state, net, members } = setup({ livePeers: () => [] })
    ae.start()
    state.active = true
    net.safeDispatchEvent('peer:connect', { detail: ids[1] })
    net.safeDispatchEvent('peer:connect', { detail: ids[1] })
    members.safeDispatchEvent('membership:peer-alive', { detail: ids[2].toString() })
    net.safeDispatchEvent('peer:connect', { detail: ids[0] }) // self: ignored
    await new Promise(resolve => setImmediate(resolve))
    expect(calls).toEqual([ids[1].toString(), ids[2].toString()])
    expect(ae.counters.onConnect).toBe(3)
    ae.stop()
    net.safeDispatchEvent('peer:connect', { detail: ids[3] })
    expect(calls).toHaveLength(2)
  })

  it('prefers peers that took part in the unfinished requests, and still reaches the others', () => {
    let r = 0
    const seq = [0.1, 0.5, 0.9, 0.2] // < 0.75: a participant; else any live peer
    const { ae } = setup({ participants: () => new Set([ids[2].toString(), 'gone-peer']), random: () => seq[r++ % seq.length] })
    ae.start()
    const picks = Array.from({ length: 4 }, () => ae.pick())
    // draws: (0.1 -> participants, 0.5 -> ids[2]) then (0.9 -> all live, 0.2 -> ids[1])
    expect(picks[0]).toBe(ids[2].toString())
    expect(picks[1]).toBe(ids[1].toString())
    ae.stop()
    expect(setup({ livePeers: () => [ids[0].toString()] }).ae.pick()).toBeUndefined()
  })

  it('a failing exchange is counted and the rounds go on', async () => {
    vi.useFakeTimers()
    let n = 0
    const { ae, state } = setup({ sync: { exchange: async () => { n++; throw new Error('unreachable') } } })
    state.active = true
    ae.start()
    await vi.advanceTimersByTimeAsync(5_000)
    expect(n).toBeGreaterThanOrEqual(4)
    expect(ae.counters.failures).toBe(n)
    ae.stop()
    expect(vi.getTimerCount()).toBe(0)
  })
})
