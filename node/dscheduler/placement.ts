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
  /** expected run time of the step (learned), ms */
  expectedMs: number
  /** instances a peer already won and has not finished, plus those this pass placed there */
  load: (peer: string) => number
  slots: (peer: string) => number
  /** link rate used to price moving bytes, bytes per ms */
  bytesPerMs: number
  /** what a hand-off to another peer costs on top of moving bytes (gossip + fetch round trip), ms */
  hopMs: number
}

/**
 * Expected time until the instance's result exists if it ran on `peer`: moving the input bytes it lacks, the
 * queue wait behind the peer's running work, and the hand-off. A tiny load term spreads siblings with equal
 * cost over idle peers instead of stacking them on one.
 */
export function placementCost (q: PlacementQuery, peer: string): number {
  const slots = Math.max(1, q.slots(peer))
  const load = q.load(peer)
  const moveMs = Math.max(0, q.totalBytes - (q.bytesAt.get(peer) ?? 0)) / q.bytesPerMs
  const queueMs = Math.max(0, load + 1 - slots) * q.expectedMs / slots
  const hop = q.producers.size > 0 && !q.producers.has(peer) ? q.hopMs : 0
  return moveMs + queueMs + hop + (load / slots) * 0.25
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

/**
 * How busy each peer is, from the claims every peer hears: the instances it won and has not finished (running,
 * or waiting for data that comes soon: claims reach one level ahead of running producers). Kept incrementally
 * (an instance enters when it is won, leaves when it is done, failed, lost or its request finished), so reading
 * a peer's load costs nothing.
 */
export class LoadBook {
  private readonly byPeer = new Map<string, Set<string>>()
  private readonly owner = new Map<string, string>()
  private readonly slotsOf = new Map<string, number>()

  constructor (private readonly defaultSlots: number) {}

  /** `peer` runs (or will run) instance `gid` now; undefined when it runs nowhere. */
  set (gid: string, peer: string | undefined): boolean {
    const prev = this.owner.get(gid)
    if (prev === peer) return false
    if (prev !== undefined) {
      const set = this.byPeer.get(prev)
      set?.delete(gid)
      if (set?.size === 0) this.byPeer.delete(prev)
      this.owner.delete(gid)
    }
    if (peer !== undefined) {
      this.owner.set(gid, peer)
      let set = this.byPeer.get(peer)
      if (set === undefined) { set = new Set(); this.byPeer.set(peer, set) }
      set.add(gid)
    }
    return true
  }

  load (peer: string): number { return this.byPeer.get(peer)?.size ?? 0 }

  learnSlots (peer: string, slots: number | undefined): void {
    if (slots !== undefined && slots > 0) this.slotsOf.set(peer, slots)
  }

  slots (peer: string): number { return this.slotsOf.get(peer) ?? this.defaultSlots }

  forgetPeer (peer: string): void { this.slotsOf.delete(peer) }

  /** Per-peer loads, for the metrics route. */
  snapshot (): Record<string, number> {
    return Object.fromEntries([...this.byPeer].map(([p, s]) => [p, s.size]))
  }
}
