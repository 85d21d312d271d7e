import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { foldScoreIntoHeartbeat } from '../../node/network/gossip-timers.ts'
import { createDflowLibp2p } from '../../node/network/libp2p.ts'

function fakeGossip (decayInterval: number): { gs: any, calls: string[] } {
  const calls: string[] = []
  const score = { params: { decayInterval }, start: () => { calls.push('score-timer') }, background: () => { calls.push('refresh') } }
  const gs = { score, heartbeat: async () => { calls.push('heartbeat') } }
  return { gs, calls }
}

describe('gossipsub timers', () => {
  it('runs the score refresh after each heartbeat instead of on a timer of its own', async () => {
    const { gs, calls } = fakeGossip(1000)
    expect(foldScoreIntoHeartbeat(gs, 1000)).toBe(true)
    gs.score.start()
    await gs.heartbeat()
    await gs.heartbeat()
    expect(calls).toEqual(['heartbeat', 'refresh', 'heartbeat', 'refresh'])
  })

  it('refreshes even when a heartbeat fails', async () => {
    const { gs, calls } = fakeGossip(1000)
    gs.heartbeat = async () => { throw new Error('boom') }
    foldScoreIntoHeartbeat(gs, 1000)
    await expect(gs.heartbeat()).rejects.toThrow('boom')
    expect(calls).toEqual(['refresh'])
  })

  it('leaves both timers alone when the intervals differ, or the implementation is not the expected one', async () => {
    const { gs, calls } = fakeGossip(1000)
    expect(foldScoreIntoHeartbeat(gs, 700)).toBe(false)
    gs.score.start()
    await gs.heartbeat()
    expect(calls).toEqual(['score-timer', 'heartbeat'])
    expect(foldScoreIntoHeartbeat({ heartbeat: 1 }, 1000)).toBe(false)
    expect(foldScoreIntoHeartbeat(undefined, 1000)).toBe(false)
  })

  it('is what a dflow peer\'s gossipsub runs with: no score timer once started', async () => {
    const node = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    try {
      await node.start()
      const score = (node.services.pubsub as unknown as { score: { _backgroundInterval?: unknown } }).score
      expect(score._backgroundInterval).toBeUndefined()
    } finally {
      await node.stop()
    }
  })
})
