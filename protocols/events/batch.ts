import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { EVENTS_VERSION, MAX_EVENT_BYTES } from './constants.ts'
import { decodeBounded, decodeEvent, EventValidationError, validateEvent } from './codec.ts'
import type { DflowEvent } from './index.ts'

/**
 * Several events of one publisher in one gossip message. Each gossip message costs a signature at the publisher,
 * a verification at every receiver, an encryption per link and a write per socket, whatever its size, and a
 * peer's events come in bursts (its running steps end together, a step's outputs and its step-done, a wave of
 * claims): publishing what one tick produced as one message pays those once.
 *
 * The gossip signature covers the whole batch. The batch also carries one origin proof for all its events
 * (`s`, `p`: protocols/sync/proof.ts, a signature over the sha-256 of each event, batchDigests), made by the
 * publisher, so that one event of the batch can be relayed by sync on its own: its proof is `s`, `p` and the
 * digests, which every receiver computes from the batch itself. Receivers do not check it (the batch's gossip
 * signature already shows who published the events); a peer that receives one over sync does.
 */
export interface BatchProof {
  /** 8 random bytes */
  seqno: Uint8Array
  /** the publisher's signature over "dflow-event-batch:" + seqno + batchDigests(events) */
  signature: Uint8Array
}

/** bytes of one event's digest in a batch proof (sha-256) */
export const BATCH_DIGEST_BYTES = 32

/**
 * The sha-256 of an event's canonical bytes: a batch's proof digests, the event's id in the request log
 * (protocols/sync eventId) and a relayed proof's check. Not cached: a WeakMap per bytes object, tried to spare
 * receivers their second hash of each batched event, cost 3-4% more peer CPU on the fan (ab-cpu.ts) than the hash.
 */
export function eventDigest (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/** The sha-256 of each event's bytes, concatenated in order: what a batch proof signs. */
export function batchDigests (events: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(events.length * BATCH_DIGEST_BYTES)
  events.forEach((e, i) => { out.set(eventDigest(e), i * BATCH_DIGEST_BYTES) })
  return out
}

/** at most this many events in one batch message */
export const MAX_BATCH_EVENTS = 256
/** a publisher names at most this many recipients (beyond it, it names none and relays forward as usual) */
export const MAX_BATCH_RECIPIENTS = 256
/** bytes per recipient: the first 4 bytes of the sha-256 of its peer id string */
export const RECIPIENT_TAG_BYTES = 4
/** a batch is closed before its events' bytes pass this (a message stays far below MAX_EVENT_BYTES) */
export const MAX_BATCH_BYTES = 256 * 1024
const SEQNO_BYTES = 8
const MAX_SIGNATURE_BYTES = 1024

/**
 * Encodes 1 to MAX_BATCH_EVENTS events (their canonical bytes) as one gossip message: `{ v: 1, type: "batch",
 * events: [bytes], s: seqno, p: signature, to?: tags }`. `to` names the peers the publisher sends the message to itself (RECIPIENT_TAG_BYTES each): a relay
 * does not forward it to those (see GossipBus), since on a network where peers are connected to each other a
 * relay's copy would only be a duplicate to decrypt and drop.
 */
export function encodeEventBatch (events: Uint8Array[], proof: BatchProof, to?: Uint8Array): Uint8Array {
  if (events.length < 1 || events.length > MAX_BATCH_EVENTS) throw new EventValidationError(`a batch holds 1 to ${MAX_BATCH_EVENTS} events, not ${events.length}`)
  if (to !== undefined && !validTags(to)) throw new EventValidationError(`"to" must hold up to ${MAX_BATCH_RECIPIENTS} tags of ${RECIPIENT_TAG_BYTES} bytes`)
  return dagCbor.encode({ v: EVENTS_VERSION, type: 'batch', events, s: proof.seqno, p: proof.signature, ...(to !== undefined ? { to } : {}) })
}

const validTags = (to: unknown): to is Uint8Array => to instanceof Uint8Array && to.byteLength % RECIPIENT_TAG_BYTES === 0 && to.byteLength <= MAX_BATCH_RECIPIENTS * RECIPIENT_TAG_BYTES

/** The tag of a peer in a batch's `to`. */
export function recipientTag (peerId: string): number {
  return createHash('sha256').update(peerId).digest().readUInt32BE(0)
}

/** The tags of a `to` field. */
export function recipientTags (to: Uint8Array): Set<number> {
  const view = new DataView(to.buffer, to.byteOffset, to.byteLength)
  const tags = new Set<number>()
  for (let i = 0; i + RECIPIENT_TAG_BYTES <= to.byteLength; i += RECIPIENT_TAG_BYTES) tags.add(view.getUint32(i))
  return tags
}

/** Encodes tags for `to` (undefined past MAX_BATCH_RECIPIENTS: then relays forward as usual). */
export function encodeRecipientTags (tags: number[]): Uint8Array | undefined {
  if (tags.length > MAX_BATCH_RECIPIENTS) return undefined
  const out = new Uint8Array(tags.length * RECIPIENT_TAG_BYTES)
  const view = new DataView(out.buffer)
  tags.forEach((t, i) => { view.setUint32(i * RECIPIENT_TAG_BYTES, t) })
  return out
}

/** Whether a decoded gossip message is a batch envelope (rather than one event). */
function isEventBatch (obj: unknown): obj is { type: 'batch', events: unknown } {
  return obj !== null && typeof obj === 'object' && !Array.isArray(obj) && (obj as Record<string, unknown>).type === 'batch'
}

/**
 * Checks a decoded batch's envelope and answers its events' bytes (not yet decoded: the caller decodes each with
 * decodeEvent) and its proof. Throws EventValidationError on anything malformed.
 */
function batchEntries (obj: unknown, messageBytes: number): { events: Uint8Array[], proof: BatchProof, to?: Uint8Array } {
  if (messageBytes > MAX_EVENT_BYTES) throw new EventValidationError(`batch of ${messageBytes} bytes exceeds ${MAX_EVENT_BYTES}`)
  if (!isEventBatch(obj)) throw new EventValidationError('not a batch')
  const { v, type: _type, events, s, p, to, ...rest } = obj as Record<string, unknown>
  if (v !== EVENTS_VERSION) throw new EventValidationError(`unsupported event version ${String(v)}`)
  if (Object.keys(rest).length > 0) throw new EventValidationError(`batch: unknown field ${JSON.stringify(Object.keys(rest)[0])}`)
  if (to !== undefined && !validTags(to)) throw new EventValidationError(`batch: "to" must hold up to ${MAX_BATCH_RECIPIENTS} tags of ${RECIPIENT_TAG_BYTES} bytes`)
  if (!(s instanceof Uint8Array) || s.byteLength !== SEQNO_BYTES) throw new EventValidationError('batch: bad proof seqno')
  if (!(p instanceof Uint8Array) || p.byteLength === 0 || p.byteLength > MAX_SIGNATURE_BYTES) throw new EventValidationError('batch: bad proof signature')
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_BATCH_EVENTS) throw new EventValidationError(`batch: "events" must list 1 to ${MAX_BATCH_EVENTS} entries`)
  events.forEach((e: unknown, i) => {
    if (!(e instanceof Uint8Array) || e.byteLength === 0) throw new EventValidationError(`batch: entry ${i} is not event bytes`)
  })
  return { events: events as Uint8Array[], proof: { seqno: s, signature: p }, ...(to !== undefined ? { to } : {}) }
}

/** One event of a gossip message: decoded, with its bytes and, from a batch, its own origin proof. */
export interface MessageEvent { event: DflowEvent, bytes: Uint8Array, proof?: BatchProof & { batch: Uint8Array } }

/**
 * Decodes a gossip message on the events topic: one event (`{ v, type, ... }`) or a batch (with the recipients it
 * names). Every event is validated (decodeEvent); throws EventValidationError on the first bad one, so a batch is
 * taken whole or not at all.
 */
export function decodeEventMessage (bytes: Uint8Array): { events: MessageEvent[], to?: Uint8Array } {
  const obj = decodeBounded(bytes, 'message')
  if (!isEventBatch(obj)) return { events: [{ event: validateEvent(obj), bytes }] }
  const { events, proof, to } = batchEntries(obj, bytes.byteLength)
  const decoded = events.map(e => decodeEvent(e))
  // every event's proof: the batch's, with the digests of all its events (one array, shared)
  const shared = { ...proof, batch: batchDigests(events) }
  return { events: decoded.map((event, i) => ({ event, bytes: events[i], proof: shared })), ...(to !== undefined ? { to } : {}) }
}
