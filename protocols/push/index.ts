import type { ValueMeta } from '../../node/dstore/types.ts'
import type { BlockWriter, ReceiveResult } from '../fetch/index.ts'
import type { PushHeader } from './codec.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export { PUSH_PROTOCOL } from './constants.ts'
export { parsePushHeader, pushHeaderBody, type PushHeader } from './codec.ts'
export { handlePush, pushBlocks, type PushOutcome } from './handler.ts'

/** The receiver's answer to a push header. */
export type PushDecision = 'accept' | 'have' | 'reject'

export interface PushReceiver extends BlockWriter {
  /** accept (wanted and not held), have (already held), reject (not chosen, no claim) */
  decide: (cid: CID, meta: ValueMeta, from: PeerId, header: PushHeader) => Promise<PushDecision>
  /** whether the header's host token proves the pusher shares this host (its shared frames are accepted) */
  isLocalToken?: (token: Uint8Array | undefined) => boolean
  /** largest value accepted, in bytes */
  maxValueBytes?: number
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
   * @default 8
   */
  window?: number
}
