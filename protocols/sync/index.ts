import type { RequestEvent } from '../events/index.ts'
import type { SyncEntry } from './codec.ts'

/**
 * `/dflow/sync/1.0.0`: anti-entropy for request events. Gossip drops messages; two peers compare the
 * digests of their per-request event logs and pull what each misses (see docs/protocols.md).
 */

/** A log's digest: equal digests mean equal event sets (count, and XOR of the 16-byte event ids). */
export interface SyncDigest { count: number, hash: Uint8Array }

/**
 * What the protocol reads and feeds: the peer's per-request event logs. The node implements it
 * (node/dscheduler/event-log.ts); the protocol never sees the scheduler.
 */
export interface SyncSource {
  /** requests unfinished on this peer: their digests open every exchange this peer starts */
  activeRequests: () => string[]
  /** undefined when this peer holds no log for the request */
  digest: (request: string) => SyncDigest | undefined
  /** the request's event ids (hex) in log order; undefined when no log is held */
  ids: (request: string) => string[] | undefined
  /** the held events with these ids (bytes, and the origin's proof when held), in the order asked */
  events: (request: string, ids: string[]) => SyncEntry[]
  /**
   * An event a peer sent: decoded, shape-checked, canonical, of a request this exchange compared, with an id
   * this side asked for (initiator), and either sent by its origin or with the origin's valid proof.
   * The node runs the rest of its checks and answers whether it was new.
   */
  ingest: (entry: SyncEntry, event: RequestEvent, from: string) => boolean
}

/** What one exchange did, from the side that reports it. */
export interface SyncResult {
  /** requests whose logs differed */
  requests: number
  /** events sent to the other side */
  sent: number
  /** events taken that were new here */
  received: number
  /** events refused (malformed, unsolicited, of another request, relayed without a valid proof) */
  rejected: number
}

export interface SyncProtocolInit {
  /** @default SYNC_READ_TIMEOUT_MS */
  readTimeoutMs?: number
  /** @default SYNC_EXCHANGE_TIMEOUT_MS */
  exchangeTimeoutMs?: number
}

export * from './constants.ts'
export { SyncMessageError, eventId, encodeSyncMessage, decodeSyncMessage, type SyncMessage, type SyncEntry, type RequestDigest, type RequestIds } from './codec.ts'
export { proofFromGossip, signEventProof, signBatchProof, verifyEventProof, MAX_PROOF_BATCH_BYTES, type EventProof } from './proof.ts'
export { SyncProtocol, SyncRemoteError, initiateSync, respondSync } from './sync.ts'
