import { StatusProtocol } from './status.ts'
import type { Libp2p, Logger } from '@libp2p/interface'

/**
 * `/dflow/status/1.0.0`: ask a peer for what only it knows about itself (slots in use, store use), for the
 * dashboard's network view. Asked on demand (only while a dashboard is open), never broadcast. One dag-cbor
 * message each way on a fresh stream: the asker sends `{ v: 1 }`, the peer answers a PeerStatusInfo.
 */
export interface PeerStatusInfo {
  /** function slots of the peer */
  slots: number
  /** slots running a function now */
  busy: number
  /** bytes of blocks its DStore holds */
  storeBytes: number
  /** its DStore capacity in bytes */
  storeCapacity: number
  /** peers it has an open connection to */
  connections: number
  /** epoch ms its process started serving (0 unknown) */
  startedAt: number
  /** its resident set size in bytes */
  rss: number
}

/** What the handler answers from: the local peer's own figures. */
export type StatusSource = () => PeerStatusInfo

/** The part of libp2p the protocol needs. */
export type StatusLibp2p = Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>

export { STATUS_PROTOCOL } from './constants.ts'
export { StatusProtocol, StatusAnswerError, checkStatusInfo } from './status.ts'

export function createStatusProtocol (libp2p: StatusLibp2p, source: StatusSource, log: Logger): StatusProtocol {
  return new StatusProtocol(libp2p, source, log)
}
