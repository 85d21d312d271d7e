import * as dagCbor from '@ipld/dag-cbor'
import { EVENTS_VERSION, MAX_EVENT_BYTES } from './constants.ts'
import { decodeEvent, EventValidationError, validateEvent } from './codec.ts'
import type { DflowEvent } from './index.ts'

/**
 * Several events of one publisher in one gossip message. Each gossip message costs a signature at the publisher,
 * a verification at every receiver, an encryption per link and a write per socket, whatever its size, and a
 * peer's events come in bursts (its running steps end together, a step's outputs and its step-done, a wave of
 * claims): publishing what one tick produced as one message pays those once.
 *
 * The gossip signature covers the whole batch. Each entry also carries its own origin proof (`seqno`, `signature`,
 * the same signature a single-event gossip message would carry, see protocols/sync/proof.ts), made by the
 * publisher, so that one event of the batch can be relayed by sync on its own. Receivers do not check these
 * proofs (the batch's signature already shows who published the events); a peer that receives one over sync does.
 */
export interface BatchEntry {
  /** the event's canonical encoding (encodeEvent) */
  bytes: Uint8Array
  /** its origin proof: 8-byte seqno and the publisher's signature */
  proof: { seqno: Uint8Array, signature: Uint8Array }
}

/** at most this many events in one batch message */
export const MAX_BATCH_EVENTS = 256
/** a batch is closed before its events' bytes pass this (a message stays far below MAX_EVENT_BYTES) */
export const MAX_BATCH_BYTES = 256 * 1024
const SEQNO_BYTES = 8
const MAX_SIGNATURE_BYTES = 1024

/** Encodes 2 to MAX_BATCH_EVENTS entries as one gossip message: `{ v: 1, type: "batch", events: [{ e, s, p }] }`. */
export function encodeEventBatch (entries: BatchEntry[]): Uint8Array {
  if (entries.length < 2 || entries.length > MAX_BATCH_EVENTS) throw new EventValidationError(`a batch holds 2 to ${MAX_BATCH_EVENTS} events, not ${entries.length}`)
  return dagCbor.encode({ v: EVENTS_VERSION, type: 'batch', events: entries.map(x => ({ e: x.bytes, s: x.proof.seqno, p: x.proof.signature })) })
}

/** Whether a decoded gossip message is a batch envelope (rather than one event). */
export function isEventBatch (obj: unknown): obj is { type: 'batch', events: unknown } {
  return obj !== null && typeof obj === 'object' && !Array.isArray(obj) && (obj as Record<string, unknown>).type === 'batch'
}

/**
 * Checks a decoded batch's envelope and answers its entries (event bytes and proofs, not yet decoded): the caller
 * decodes each with decodeEvent. Throws EventValidationError on anything malformed.
 */
export function batchEntries (obj: unknown, messageBytes: number): BatchEntry[] {
  if (messageBytes > MAX_EVENT_BYTES) throw new EventValidationError(`batch of ${messageBytes} bytes exceeds ${MAX_EVENT_BYTES}`)
  if (!isEventBatch(obj)) throw new EventValidationError('not a batch')
  const { v, type: _type, events, ...rest } = obj as Record<string, unknown>
  if (v !== EVENTS_VERSION) throw new EventValidationError(`unsupported event version ${String(v)}`)
  if (Object.keys(rest).length > 0) throw new EventValidationError(`batch: unknown field ${JSON.stringify(Object.keys(rest)[0])}`)
  if (!Array.isArray(events) || events.length < 2 || events.length > MAX_BATCH_EVENTS) throw new EventValidationError(`batch: "events" must list 2 to ${MAX_BATCH_EVENTS} entries`)
  return events.map((x: unknown, i) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new EventValidationError(`batch: entry ${i} is not a map`)
    const { e, s, p, ...more } = x as Record<string, unknown>
    if (Object.keys(more).length > 0) throw new EventValidationError(`batch: entry ${i} has an unknown field`)
    if (!(e instanceof Uint8Array) || e.byteLength === 0) throw new EventValidationError(`batch: entry ${i} has no event bytes`)
    if (!(s instanceof Uint8Array) || s.byteLength !== SEQNO_BYTES) throw new EventValidationError(`batch: entry ${i} has a bad seqno`)
    if (!(p instanceof Uint8Array) || p.byteLength === 0 || p.byteLength > MAX_SIGNATURE_BYTES) throw new EventValidationError(`batch: entry ${i} has a bad signature`)
    return { bytes: e, proof: { seqno: s, signature: p } }
  })
}

/** One event of a gossip message: decoded, with its bytes and, from a batch, its own origin proof. */
export interface MessageEvent { event: DflowEvent, bytes: Uint8Array, proof?: BatchEntry['proof'] }

/**
 * Decodes a gossip message on the events topic: one event (`{ v, type, ... }`) or a batch. Every event is
 * validated (decodeEvent); throws EventValidationError on the first bad one, so a batch is taken whole or not at all.
 */
export function decodeEventMessage (bytes: Uint8Array): MessageEvent[] {
  if (bytes.byteLength > MAX_EVENT_BYTES) throw new EventValidationError(`message of ${bytes.byteLength} bytes exceeds ${MAX_EVENT_BYTES}`)
  let obj: unknown
  try {
    obj = dagCbor.decode(bytes)
  } catch (err) {
    throw new EventValidationError(`not dag-cbor: ${(err as Error).message}`)
  }
  if (!isEventBatch(obj)) return [{ event: validateEvent(obj), bytes }]
  return batchEntries(obj, bytes.byteLength).map(entry => ({ event: decodeEvent(entry.bytes), bytes: entry.bytes, proof: entry.proof }))
}
