import { afterEach, describe, expect, it, vi } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { createPeerScoreParams, PeerScore } from '@libp2p/gossipsub/score'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { boundDeliveryRecords, seenTtlMs } from '../../node/network/gossip-window.ts'
import { createDflowLibp2p } from '../../node/network/libp2p.ts'

function score (): PeerScore {
  return new PeerScore(createPeerScoreParams(), null, defaultLogger(), { scoreCacheValidityMs: 1000 })
}

describe('gossip seen window', () => {
  afterEach(() => { vi.useRealTimers() })

  it('is 30 heartbeats, at least 30 s', () => {
    expect(seenTtlMs(1000)).toBe(30_000)
    expect(seenTtlMs(100)).toBe(30_000)
    expect(seenTtlMs(2000)).toBe(60_000)
  })

  it('drops delivery records after the window instead of gossipsub\'s fixed 2 minutes', () => {
    vi.useFakeTimers()
    const bounded = score()
    const plain = score()
    expect(boundDeliveryRecords({ score: bounded }, 30_000)).toBe(true)
    for (const s of [bounded, plain]) { s.validateMessage('a'); s.validateMessage('b') }
    vi.advanceTimersByTime(29_000)
    for (const s of [bounded, plain]) { s.deliveryRecords.gc(); expect(s.deliveryRecords.getRecord('a')).toBeDefined() }
    vi.advanceTimersByTime(2_000)
    bounded.deliveryRecords.gc()
    plain.deliveryRecords.gc()
    expect(bounded.deliveryRecords.getRecord('a')).toBeUndefined()
    expect(bounded.deliveryRecords.getRecord('b')).toBeUndefined()
    expect(bounded.deliveryRecords.queue.length).toBe(0)
    // unpatched, gossipsub keeps them: the test would pass without the bound only if gossipsub changed
    expect(plain.deliveryRecords.getRecord('a')).toBeDefined()
  })

  it('keeps a record that is only looked up again (no second queue entry, expiry unchanged)', () => {
    vi.useFakeTimers()
    const s = score()
    boundDeliveryRecords({ score: s }, 30_000)
    s.validateMessage('a')
    vi.advanceTimersByTime(20_000)
    s.duplicateMessage('peer', 'a', 'topic')
    expect(s.deliveryRecords.queue.length).toBe(1)
    vi.advanceTimersByTime(11_000)
    s.deliveryRecords.gc()
    expect(s.deliveryRecords.getRecord('a')).toBeUndefined()
  })

  it('is what a dflow peer\'s gossipsub runs with', async () => {
    const node = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519'), gossipHeartbeatMs: 2000 })
    try {
      const gs = node.services.pubsub as unknown as { opts: { seenTTL: number }, score: PeerScore }
      expect(gs.opts.seenTTL).toBe(60_000)
      vi.useFakeTimers()
      gs.score.validateMessage('m')
      expect(gs.score.deliveryRecords.queue.peekBack()?.expire).toBe(Date.now() + 60_000)
    } finally {
      vi.useRealTimers()
      await node.stop()
    }
  })

  it('leaves an unexpected shape alone', () => {
    expect(boundDeliveryRecords({}, 30_000)).toBe(false)
    expect(boundDeliveryRecords({ score: { deliveryRecords: {} } }, 30_000)).toBe(false)
  })
})
