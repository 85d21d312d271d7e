import type { Value } from '../values/codec.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Names the value a push carries, so the receiver can decide whether it wants it. */
export interface ValueMeta {
  request: string
  step: string
  output: string
  /** foreach index or stream element index; null otherwise */
  index: number | null
}

export interface PutResult {
  cid: CID
  /** encoded size in bytes */
  size: number
  /** the encoded bytes when size <= inline limit (for inlining into readiness events) */
  inline?: Uint8Array
}

export interface PutOptions {
  /** pin to this request (else retained for the retention time) */
  pin?: string
  /** names the value for pushes; a value with meta is one a readiness event names */
  meta?: ValueMeta
  /**
   * Announce a provider record in the DHT. Only needed for values someone will look up by CID alone
   * (API puts, workflow inputs given by `$cid`); a value named in a readiness event carries its holders.
   * @default true without `meta`, false with it
   */
  provide?: boolean
}

export interface GetOptions {
  signal?: AbortSignal
  /** peers known to hold the value (from the readiness event); the DHT is asked when they fail */
  holders?: PeerId[]
  /** pin what is fetched to this request */
  pin?: string
}

export interface StoreStats {
  blocks: number
  bytes: number
  pinned: number
  hits: number
  misses: number
}

/**
 * DStore as the scheduler uses it. Every method that touches the network takes a signal and has a timeout.
 */
export interface DStore {
  /** Store locally (pinned to `pin` when given); replication and DHT announcement happen in the background. */
  put: (value: Value, opts?: PutOptions) => Promise<PutResult>
  /** Local when held, else fetched from holders / providers and verified block by block. */
  get: (cid: CID, opts?: GetOptions) => Promise<Value>
  has: (cid: CID) => Promise<boolean>
  /**
   * Whether `get` would find the value without a message: held here, or (a value of one block) in the shared
   * file of a holder on this host. A guess for planning, not a promise: the file may be gone by the read.
   */
  nearby?: (cid: CID, holders: readonly string[]) => boolean
  /** Deliver a value to a peer ahead of its request (it claimed a consumer). Background; never throws. */
  pushTo: (peer: PeerId, cid: CID, meta: ValueMeta) => void
  unpinRequest: (request: string, keep?: CID[]) => Promise<void>
  stats: () => StoreStats
}

/** The awaited form of pushTo, for `store: central` (a producer hands its value to the central peer before announcing it). */
export interface AwaitablePush {
  push: (peer: PeerId, cid: CID, meta: ValueMeta, signal?: AbortSignal) => Promise<void>
}
