import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export { FETCH_PROTOCOL } from './constants.ts'
export * from './codec.ts'
export { sendBlocks, receiveBlocks, MissingBlockError, type ReceiveResult } from './transfer.ts'
export { handleFetch, fetchBlocks } from './handler.ts'

/** Where a sender reads the blocks it serves. */
export interface BlockReader {
  /** The block's bytes, or undefined when it is not held. */
  getBlock: (cid: CID, options?: AbortOptions) => Promise<Uint8Array | undefined>
}

/** Where a receiver writes verified blocks. */
export interface BlockWriter {
  putBlock: (cid: CID, bytes: Uint8Array, options?: AbortOptions) => Promise<void>
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
   * @default 4
   */
  window?: number
}
