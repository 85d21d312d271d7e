import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export { FETCH_PROTOCOL } from './constants.ts'
export * from './codec.ts'
export { sendBlocks, receiveBlocks, MissingBlockError, type ReceiveResult, type ReceiveOptions, type SendPlan } from './transfer.ts'
import type { SharedFileInfo } from './codec.ts'
import type { SendPlan } from './transfer.ts'
export { handleFetch, fetchBlocks, fetchOn, openSession, SESSION_IDLE_MS, type FetchSession } from './handler.ts'
export { FetchSessions } from './sessions.ts'

/** Where a sender reads the blocks it serves. */
export interface BlockReader {
  /** The block's bytes, or undefined when it is not held. */
  getBlock: (cid: CID, options?: AbortOptions) => Promise<Uint8Array | undefined>
  /** The value's root and chunk list without parsing the root again (a cache); undefined when not held. */
  plan?: (cid: CID, options?: AbortOptions) => Promise<SendPlan | undefined>
  /** The block as a file of this peer's shared directory, when it is one (same-host fast path). */
  sharedFile?: (cid: CID) => SharedFileInfo | undefined
  /** Whether a fetch request's host token proves the fetcher shares this host, user and network. */
  isLocalToken?: (token: Uint8Array | undefined) => boolean
}

/** Where a receiver writes verified blocks. */
export interface BlockWriter {
  putBlock: (cid: CID, bytes: Uint8Array, options?: AbortOptions) => Promise<void>
  /**
   * Takes a block from the sender's shared directory (same host) after checking the file is the one the
   * sender attested, and reads it into `into` at `offset` when given; throws BlockVerificationError
   * otherwise. `root`: the block is a whole value's only block (always read, into `into`), and must not be
   * a chunked root.
   */
  adoptShared?: (cid: CID, file: SharedFileInfo, options: AbortOptions & { root?: boolean, into?: Uint8Array, offset?: number }) => Promise<void>
}

export interface FetchProtocolInit {
  /**
   * Largest frame accepted (one block plus framing).
   * @default 1 MiB + 64 KiB
   */
  maxMessageBytes?: number
  /**
   * Whole-transfer timeout, combined with the caller's signal.
   * @default 60000
   */
  timeoutMs?: number
  /**
   * Blocks the sender may have in flight before the receiver grants more.
   * @default 8
   */
  window?: number
}
