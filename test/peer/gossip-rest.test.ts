import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { foldScoreIntoHeartbeat, restHeartbeatWhenQuiet, type RestHeartbeat } from '../../node/network/gossip-timers.ts'
import { createDflowLibp2p } from '../../node/network/libp2p.ts'

/**
 * A stand-in for gossipsub's heartbeat loop, as @libp2p/gossipsub 17 runs it: a setTimeout re-armed after each
 * heartbeat, its delay read from opts.heartbeatInterval each time (phase kept from the start, one skipped when
 * the next is less than a quarter interval away).
 */
class FakeGossip extends EventTarget {
  opts = { heartbeatInterval: 1000 }
  status: { code: number, heartbeatTimeout?: ReturnType<typeof setTimeout>, hearbeatStartMs: number } = { code: 0, hearbeatStartMs: 0 }
  beats: number[] = []
  refreshes: number[] = []
  published = 0
  score = { params: { decayInterval: 1000 }, start: () => {}, background: () => { this.refreshes.push(Date.now()) } }

  start (): void {
    this.status.hearbeatStartMs = Date.now() + 100
    this.status.heartbeatTimeout = setTimeout(this.runHeartbeat, 100)
  }

  stop (): void {
    this.status.code = 1
    clearTimeout(this.status.heartbeatTimeout)
  }

  async heartbeat (): Promise<void> { this.beats.push(Date.now()) }

  async publish (): Promise<void> { this.published++ }

  runHeartbeat = (): void => {
    void this.heartbeat().finally(() => {
      if (this.status.code !== 0) return
      clearTimeout(this.status.heartbeatTimeout)
      const i = this.opts.heartbeatInterval
      let ms = i - ((Date.now() - this.status.hearbeatStartMs) % i)
      if (ms < i * 0.25) ms += i
      this.status.heartbeatTimeout = setTimeout(this.runHeartbeat, ms)
    })
  }
}

describe('gossipsub heartbeat at rest', () => {
  let gs: FakeGossip
  let node: EventTarget
  let rest: RestHeartbeat

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    gs = new FakeGossip()
    node = new EventTarget()
    expect(foldScoreIntoHeartbeat(gs, 1000)).toBe(true)
    const r = restHeartbeatWhenQuiet(gs, node as any, { fastMs: 1000, restMs: 5000, quietMs: 10_000 })
    expect(r).toBeDefined()
    rest = r as RestHeartbeat
    gs.start()
  })

  afterEach(() => {
    gs.stop()
    vi.useRealTimers()
  })

  const beatsIn = (from: number): number[] => gs.beats.filter(t => t >= from)

  it('beats every 1 s until nothing has happened for 10 s, then every 5 s; scores still decay once a second', async () => {
    const t0 = Date.now()
    await vi.advanceTimersByTimeAsync(10_000)
    expect(beatsIn(t0).length).toBeGreaterThanOrEqual(9)
    await vi.advanceTimersByTimeAsync(5000)
    expect(rest.resting).toBe(true)
    const from = Date.now()
    await vi.advanceTimersByTimeAsync(30_000)
    const beats = beatsIn(from)
    expect(beats.length).toBe(6)
    expect(new Set(beats.slice(1).map((t, i) => t - beats[i]))).toEqual(new Set([5000]))
    // the score's refresh catches up per decay interval, so decay per second is what gossipsub's own timer gave
    expect(gs.refreshes.filter(t => t >= from).length).toBeGreaterThanOrEqual(29)
  })

  for (const [what, act] of [
    ['a message received', (g: FakeGossip) => { g.dispatchEvent(new Event('gossipsub:message')) }],
    ['a subscription change', (g: FakeGossip) => { g.dispatchEvent(new Event('subscription-change')) }],
    ['a prune', (g: FakeGossip) => { g.dispatchEvent(new Event('gossipsub:prune')) }],
    ['a publish', (g: FakeGossip) => { void g.publish() }],
    ['a closed connection', (_g: FakeGossip, n: EventTarget) => { n.dispatchEvent(new Event('peer:disconnect')) }]
  ] as const) {
    it(`${what} brings the next heartbeat within 1 s, and the 1 s heartbeat for 10 s`, async () => {
      await vi.advanceTimersByTimeAsync(20_000)
      expect(rest.resting).toBe(true)
      // just after a rest heartbeat: the next one would be 5 s away
      const n = gs.beats.length
      while (gs.beats.length === n) await vi.advanceTimersByTimeAsync(50)
      await vi.advanceTimersByTimeAsync(200)
      const woke = Date.now()
      act(gs, node)
      expect(rest.resting).toBe(false)
      await vi.advanceTimersByTimeAsync(1000)
      expect(beatsIn(woke)).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(8000)
      expect(beatsIn(woke).length).toBeGreaterThanOrEqual(9)
      await vi.advanceTimersByTimeAsync(10_000)
      expect(rest.resting).toBe(true)
    })
  }

  it('publishes what it is given', async () => {
    await gs.publish()
    expect(gs.published).toBe(1)
  })

  it('leaves gossipsub alone when it is not the expected implementation', () => {
    expect(restHeartbeatWhenQuiet({ opts: { heartbeatInterval: 1000 } }, new EventTarget() as any, { fastMs: 1000, restMs: 5000, quietMs: 10_000 })).toBeUndefined()
    expect(restHeartbeatWhenQuiet(undefined, new EventTarget() as any, { fastMs: 1000, restMs: 5000, quietMs: 10_000 })).toBeUndefined()
    expect(restHeartbeatWhenQuiet(new FakeGossip(), new EventTarget() as any, { fastMs: 700, restMs: 5000, quietMs: 10_000 })).toBeUndefined()
  })
})

describe('gossipsub heartbeat at rest on a dflow peer', () => {
  it('finds what it needs in the gossipsub a peer runs with (a version that changed them would be left alone)', async () => {
    const node = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    const gs = node.services.pubsub as unknown as { opts: { heartbeatInterval: number }, runHeartbeat: unknown, status: unknown }
    expect(gs.opts.heartbeatInterval).toBe(1000)
    expect(typeof gs.runHeartbeat).toBe('function')
    expect(restHeartbeatWhenQuiet(gs, node, { fastMs: 1000, restMs: 5000, quietMs: 10_000 })).toBeDefined()
  })
})
