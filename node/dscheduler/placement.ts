/**
 * Rendezvous (highest random weight) score of a peer for an instance key: every peer computes the same
 * number, so placement ties and claim conflicts end the same way everywhere. Placement scores every live
 * peer for every instance it walks, so this is a cheap 53-bit mix of two FNV-1a hashes (a sha256 here was
 * a visible share of a testnet peer's CPU); it needs spread, not secrecy.
 */
export function rendezvousScore (peer: string, key: string): number {
  let a = 0x811c9dc5
  let b = 0x9747b28c
  const mix = (str: string): void => {
    for (let i = 0; i < str.length; i++) {
      const c = str.charCodeAt(i)
      a = Math.imul(a ^ c, 0x01000193)
      b = Math.imul(b ^ c, 0x5bd1e995)
    }
  }
  mix(peer)
  a = Math.imul(a, 0x01000193)
  b = Math.imul(b ^ (b >>> 13), 0x5bd1e995)
  mix(key)
  // final avalanche (murmur3's fmix32) so that keys differing in their last character spread
  const fmix = (h: number): number => {
    h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); return (h ^ (h >>> 16)) >>> 0
  }
  return fmix(a) * 0x200000 + (fmix(b) >>> 11)
}

/** A claim as every peer records it: the claimant's attempt, incarnation and the claim's own time. */
export interface ClaimOrderEntry { peer: string, attempt: number, ts: number }

/**
 * The one order that settles conflicting claims on an instance: the highest attempt (a takeover or re-run
 * replaces what it supersedes), then the earliest claim (a claim made later, from an older view of the
 * network, never unseats a winner that may already run), then the highest rendezvous score.
 * Placement produces claims in this order: the peer it picks claims first, everyone else waits for that claim.
 */
export function claimWinner (key: string, claims: ClaimOrderEntry[]): ClaimOrderEntry | undefined {
  let best: ClaimOrderEntry | undefined
  let bestScore = 0
  for (const c of claims) {
    if (best === undefined || c.attempt > best.attempt || (c.attempt === best.attempt && c.ts < best.ts)) {
      best = c
      bestScore = -1
      continue
    }
    if (c.attempt !== best.attempt || c.ts !== best.ts) continue
    if (bestScore < 0) bestScore = rendezvousScore(best.peer, key)
    const score = rendezvousScore(c.peer, key)
    if (score > bestScore) { best = c; bestScore = score }
  }
  return best
}

/** What placement weighs for one instance, as every peer sees it from the same events. */
export interface PlacementQuery {
  key: string
  candidates: string[]
  /** input bytes (produced, or expected from producers already placed) each peer holds or will hold */
  bytesAt: Map<string, number>
  /** all movable input bytes, produced or expected */
  totalBytes: number
  /** peers holding the latest inputs: running there saves the event round trip of a hand-off */
  producers: Set<string>
  /**
   * expected wait for a slot on the peer once the instance's inputs exist, ms (queue-model.ts: only work ready
   * before it counts, claims made ahead whose inputs come later do not)
   */
  queueMs: (peer: string) => number
  /** work the peer holds or is expected to, per slot: a tie-break that spreads equal-cost siblings */
  spread: (peer: string) => number
  /** link rate used to price moving bytes, bytes per ms */
  bytesPerMs: number
  /** what a hand-off to another peer costs on top of moving bytes (gossip + fetch round trip), ms */
  hopMs: number
  /**
   * the cold start the instance would meet on the peer, ms: its module is warmed for it on one peer only
   * (warm-plan.ts), elsewhere it starts when it fires; absent: the same everywhere
   */
  coldMs?: (peer: string) => number
}

/**
 * Expected time until the instance's result exists if it ran on `peer`: moving the input bytes it lacks, the
 * wait for a slot there once its inputs exist, the hand-off, and a cold start where its module is not warmed. A tiny term spreads siblings with equal cost
 * over idle peers instead of stacking them on one.
 */
export function placementCost (q: PlacementQuery, peer: string): number {
  const moveMs = Math.max(0, q.totalBytes - (q.bytesAt.get(peer) ?? 0)) / q.bytesPerMs
  const hop = q.producers.size > 0 && !q.producers.has(peer) ? q.hopMs : 0
  return moveMs + q.queueMs(peer) + hop + (q.coldMs?.(peer) ?? 0) + q.spread(peer) * 0.25
}

/** The cheapest candidate; ties go to the highest rendezvous score (the same answer on every peer). */
export function bestPeer (q: PlacementQuery, exclude?: Set<string>): string | undefined {
  let best: string | undefined
  let bestCost = Infinity
  let bestScore = 0
  for (const peer of q.candidates) {
    if (exclude?.has(peer) === true) continue
    const cost = placementCost(q, peer)
    if (cost > bestCost + 1e-9) continue
    const score = rendezvousScore(peer, q.key)
    if (cost < bestCost - 1e-9 || score > bestScore) { best = peer; bestCost = cost; bestScore = score }
  }
  return best
}

/**
 * Candidates for an instance, best first, by input bytes held then rendezvous order (request hand-over and
 * finisher choice use it with no bytes: a pure rendezvous ranking).
 */
export function rankCandidates (key: string, live: string[], localBytes: Map<string, number>): string[] {
  const scored = live.map(peer => ({ peer, bytes: localBytes.get(peer) ?? 0, score: rendezvousScore(peer, key) }))
  scored.sort((a, b) => b.bytes - a.bytes || b.score - a.score)
  return scored.map(s => s.peer)
}
