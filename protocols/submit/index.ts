import type { InputValue, RequestView, SubmitOptions } from '../../node/dscheduler/types.ts'
import type { RequestStarted } from '../events/index.ts'

/**
 * `/dflow/submit/1.0.0`: submit a request to a peer, or ask a peer what it knows of one (status, logs).
 * One dag-cbor message each way on a fresh stream; errors travel back as a status, never as a throw.
 */
export type SubmitMessage =
  | { op: 'submit', workflow: string, inputs: Record<string, InputValue>, requestId?: string, mode?: SubmitOptions['mode'], store?: SubmitOptions['store'], deadlineMs?: number }
  | { op: 'status', requestId: string }
  | { op: 'logs', requestId: string }
  /** a submitter hands a new request's request-started event (dag-cbor, as on gossip) to a few peers directly */
  | { op: 'announce', event: Uint8Array }

export type SubmitAnswer =
  | { status: 'ok', requestId?: string, view?: RequestView, logs?: LogLine[] }
  | { status: 'not_found' | 'bad_request' | 'error', message: string }

export interface LogLine { step: string, index: number | null, peer: string, line: string, ts: number }

/** What the handler serves from: the peer's scheduler. */
export interface SubmitTarget {
  submit: (opts: SubmitOptions) => Promise<string>
  view: (requestId: string) => Promise<RequestView | undefined>
  logs: (requestId: string) => LogLine[]
  /** take a request-started event sent directly by its submitter (`from` is checked against the stream's peer) */
  announce: (event: RequestStarted) => void
}

export { SUBMIT_PROTOCOL } from './constants.ts'
export { SubmitProtocol, SubmitRemoteError } from './submit.ts'
export { SubmitMessageError, decodeSubmitMessage, decodeSubmitAnswer, encodeSubmitMessage, encodeSubmitAnswer } from './codec.ts'
