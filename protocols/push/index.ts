import type { ValueMeta } from '../../node/dstore/types.ts'
import type { ReceiveResult } from '../fetch/index.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export { PUSH_PROTOCOL } from './constants.ts'
export { parsePushHeader, pushHeaderBody, type PushHeader } from './codec.ts'
export { handlePush, pushBlocks, type PushOutcome } from './handler.ts'

/** The receiver's answer to a push header. */
export type PushDecision = 'accept' | 'have' | 'reject'

export interface PushReceiver {
  /** accept (wanted and not held), have (already held), reject (not chosen, no claim) */
  decide: (cid: CID, meta: ValueMeta, from: PeerId) => Promise<PushDecision>
  /** verified blocks go here */
  putBlock: (cid: CID, bytes: Uint8Array, options?: { signal?: AbortSignal }) => Promise<void>
  /** the whole value landed and was verified */
  landed: (cid: CID, meta: ValueMeta, from: PeerId, result: ReceiveResult) => Promise<void>
}

export interface PushProtocolInit {
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
   * Blocks in flight before the receiver grants more.
   * @default 4
   */
  window?: number
}
