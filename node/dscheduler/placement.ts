import { createHash } from 'node:crypto'

/**
 * Rendezvous (highest random weight) score of a peer for an instance key: every peer computes the same
 * number, so every peer ranks candidates alike and claim races end in one deterministic winner.
 */
export function rendezvousScore (peer: string, key: string): bigint {
  const h = createHash('sha256').update(peer).update('\0').update(key).digest()
  return h.readBigUInt64BE(0)
}

/**
 * Candidates for an instance, best first: the peer holding most of its input bytes (data locality),
 * then rendezvous order. `localBytes` counts only values not carried inline (those are everywhere).
 */
export function rankCandidates (key: string, live: string[], localBytes: Map<string, number>): string[] {
  return [...live].sort((a, b) => {
    const byBytes = (localBytes.get(b) ?? 0) - (localBytes.get(a) ?? 0)
    if (byBytes !== 0) return byBytes
    const sa = rendezvousScore(a, key)
    const sb = rendezvousScore(b, key)
    return sa === sb ? 0 : sa > sb ? -1 : 1
  })
}

/**
 * Among several valid claims on one instance, the winner: the highest attempt (a takeover or re-run beats
 * the claims it replaces), then the highest rendezvous score — the same answer on every peer.
 */
export function claimWinner (key: string, claims: Array<{ peer: string, attempt: number }>): string | undefined {
  let best: { peer: string, attempt: number, score: bigint } | undefined
  for (const c of claims) {
    const score = rendezvousScore(c.peer, key)
    if (best === undefined || c.attempt > best.attempt || (c.attempt === best.attempt && score > best.score)) best = { ...c, score }
  }
  return best?.peer
}
