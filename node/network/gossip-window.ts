import type { PeerScore } from '@libp2p/gossipsub/score'

/**
 * How long gossipsub remembers a message it has seen, in heartbeats (at least SEEN_MIN_MS).
 *
 * gossipsub's default is a fixed 2 minutes, and it keeps several records per message for that long (the seen
 * and fast-id caches, the published-id cache, and the score's delivery record, which has its own fixed
 * 2 minutes): about 0.8 KiB per message per peer. A burst of requests at 6 events each then holds every
 * message of the last 2 minutes, which made a peer's memory after 1000 requests several MiB larger than
 * after 100 while nothing leaked.
 *
 * The window only has to outlast the last duplicate copy. A copy comes from a mesh neighbour forwarding it
 * right after validating it, or from an IWANT answering an IHAVE, which names only ids of the last
 * `mcacheGossip` (3) heartbeats and is served from a `mcacheLength` (5) heartbeat cache. So each hop adds at
 * most about 5 heartbeats, and the mesh of the networks we run (D = 6; 32 peers are 2-3 hops apart) brings the
 * last copy within 15-20 heartbeats. 30 leaves room for queueing under load.
 *
 * A copy that comes later anyway is harmless: it is delivered once more, and the request event logs drop it
 * as a duplicate (node/dscheduler/logged-bus.ts) or the scheduler drops it as an event of a forgotten
 * request; a copy that never comes is what anti-entropy is for. The seen cache never stopped replays either:
 * a signed event can be resent after any window.
 */
export const SEEN_HEARTBEATS = 30
export const SEEN_MIN_MS = 30_000

export function seenTtlMs (heartbeatMs: number): number {
  return Math.max(SEEN_MIN_MS, SEEN_HEARTBEATS * heartbeatMs)
}

/**
 * The score's delivery records live a fixed 2 minutes (`TimeCacheDuration`, not an option). Bound them by the
 * seen window too: each new record's expiry is rewritten when it is queued, so gossipsub's own gc (every
 * score refresh, 1 s) drops it. A late duplicate finds no record and gets a fresh one, as after 2 minutes
 * before; P3 mesh delivery counts only copies within `meshMessageDeliveriesWindow` (ms) of the first. Uses
 * only public members of the implementation; answers false and changes nothing when they are not what this expects.
 */
export function boundDeliveryRecords (pubsub: unknown, ttlMs: number): boolean {
  // the GossipSub interface does not name its score; the implementation's is a public field
  const records = (pubsub as { score?: Partial<Pick<PeerScore, 'deliveryRecords'>> } | undefined)?.score?.deliveryRecords
  const queue = records?.queue
  if (typeof records?.ensureRecord !== 'function' || typeof queue?.peekBack !== 'function' || typeof queue.length !== 'number') return false
  const ensure = records.ensureRecord.bind(records)
  records.ensureRecord = (msgIdStr: string) => {
    const before = queue.length
    const record = ensure(msgIdStr)
    if (queue.length > before) {
      const entry = queue.peekBack()
      if (entry !== undefined && entry.msgId === msgIdStr) entry.expire = Date.now() + ttlMs
    }
    return record
  }
  return true
}
