import { afterEach, describe, expect, it, vi } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { createPeerScoreParams, PeerScore } from '@libp2p/gossipsub/score'
import { boundDeliveryRecords, seenTtlMs } from '../../node/network/gossip-window.ts'

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

  it('leaves an unexpected shape alone', () => {
    expect(boundDeliveryRecords({}, 30_000)).toBe(false)
    expect(boundDeliveryRecords({ score: { deliveryRecords: {} } }, 30_000)).toBe(false)
  })
})
