import * as dagCbor from '@ipld/dag-cbor'
import { MAX_EVENT_BYTES } from '../events/constants.ts'
import { MAX_PROOF_BATCH_BYTES, MAX_PROOF_SIGNATURE_BYTES, PROOF_SEQNO_BYTES, type EventProof } from './proof.ts'
import { BATCH_DIGEST_BYTES, eventDigest } from '../events/batch.ts'
import { MAX_SYNC_EVENTS, MAX_SYNC_IDS_PER_REQUEST, MAX_SYNC_MESSAGE_BYTES, MAX_SYNC_REQUESTS, SYNC_ID_BYTES } from './constants.ts'

/** A malformed, oversized or unexpected sync message: the exchange ends, the peer stays up. */
export class SyncMessageError extends Error {
  static readonly NAME = 'SyncMessageError'
  constructor (message: string) {
    super(message)
    this.name = SyncMessageError.NAME
  }
}

/** One request's log as a digest: its event count and the XOR of its event ids (see docs/protocols.md). */
export interface RequestDigest { request: string, count: number, hash: Uint8Array }
/** One request's event ids (hex, SYNC_ID_BYTES each), in the sender's log order. */
export interface RequestIds { request: string, ids: string[] }

/** One event on the wire: its canonical bytes, and the origin's proof when the sender is not the origin. */
export interface SyncEntry { bytes: Uint8Array, proof?: EventProof }

/**
 * The four messages of an exchange (initiator: digests, push; responder: ids, events), plus error,
 * which either side may send instead of its next message.
 */
export type SyncMessage =
  | { type: 'digests', digests: RequestDigest[] }
  | { type: 'ids', lists: RequestIds[] }
  | { type: 'push', events: SyncEntry[], want: RequestIds[] }
  | { type: 'events', events: SyncEntry[] }
  | { type: 'error', message: string }

const HEX_ID = new RegExp(`^[0-9a-f]{${SYNC_ID_BYTES * 2}}$`)

/** The id of an event: the first SYNC_ID_BYTES of the sha-256 of its canonical encoding, as hex. */
export function eventId (bytes: Uint8Array): string {
  const d = eventDigest(bytes)
  return Buffer.from(d.buffer, d.byteOffset, SYNC_ID_BYTES).toString('hex')
}

function joinIds (ids: string[]): Uint8Array {
  const out = new Uint8Array(ids.length * SYNC_ID_BYTES)
  ids.forEach((id, i) => {
    if (!HEX_ID.test(id)) throw new SyncMessageError(`bad event id ${JSON.stringify(id)}`)
    out.set(Buffer.from(id, 'hex'), i * SYNC_ID_BYTES)
  })
  return out
}

function splitIds (bytes: unknown, where: string): string[] {
  if (!(bytes instanceof Uint8Array)) throw new SyncMessageError(`${where}: ids must be bytes`)
  if (bytes.byteLength % SYNC_ID_BYTES !== 0) throw new SyncMessageError(`${where}: ${bytes.byteLength} bytes of ids is not a multiple of ${SYNC_ID_BYTES}`)
  const n = bytes.byteLength / SYNC_ID_BYTES
  if (n > MAX_SYNC_IDS_PER_REQUEST) throw new SyncMessageError(`${where}: ${n} ids exceed ${MAX_SYNC_IDS_PER_REQUEST}`)
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(hex.slice(i * SYNC_ID_BYTES * 2, (i + 1) * SYNC_ID_BYTES * 2))
  return out
}

function requestName (v: unknown, where: string): string {
  // the events codec's rule for a request id: a non-empty string under 1024 characters
  if (typeof v !== 'string' || v.length === 0 || v.length >= 1024) throw new SyncMessageError(`${where}: bad request id`)
  return v
}

function list (v: unknown, max: number, where: string): unknown[] {
  if (!Array.isArray(v)) throw new SyncMessageError(`${where} must be a list`)
  if (v.length > max) throw new SyncMessageError(`${where}: ${v.length} entries exceed ${max}`)
  return v
}

function entry (v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) throw new SyncMessageError(`${where} must be a map`)
  return v as Record<string, unknown>
}

function events (v: unknown, where: string): SyncEntry[] {
  return list(v, MAX_SYNC_EVENTS, where).map((raw, i) => {
    const e = entry(raw, `${where}[${i}]`)
    for (const k of Object.keys(e)) if (k !== 'e' && k !== 's' && k !== 'g' && k !== 'b') throw new SyncMessageError(`${where}[${i}]: unknown field "${k}"`)
    const bytes = e.e
    if (!(bytes instanceof Uint8Array)) throw new SyncMessageError(`${where}[${i}]: event must be bytes`)
    if (bytes.byteLength === 0 || bytes.byteLength > MAX_EVENT_BYTES) throw new SyncMessageError(`${where}[${i}]: ${bytes.byteLength} bytes is not an event size`)
    if (e.s === undefined && e.g === undefined && e.b === undefined) return { bytes }
    if (!(e.s instanceof Uint8Array) || e.s.byteLength !== PROOF_SEQNO_BYTES) throw new SyncMessageError(`${where}[${i}]: proof seqno must be ${PROOF_SEQNO_BYTES} bytes`)
    if (!(e.g instanceof Uint8Array) || e.g.byteLength === 0 || e.g.byteLength > MAX_PROOF_SIGNATURE_BYTES) throw new SyncMessageError(`${where}[${i}]: proof signature must be 1 to ${MAX_PROOF_SIGNATURE_BYTES} bytes`)
    if (e.b === undefined) return { bytes, proof: { seqno: e.s, signature: e.g } }
    if (!(e.b instanceof Uint8Array) || e.b.byteLength === 0 || e.b.byteLength % BATCH_DIGEST_BYTES !== 0 || e.b.byteLength > MAX_PROOF_BATCH_BYTES) throw new SyncMessageError(`${where}[${i}]: proof batch must be 1 to ${MAX_PROOF_BATCH_BYTES / BATCH_DIGEST_BYTES} digests of ${BATCH_DIGEST_BYTES} bytes`)
    return { bytes, proof: { seqno: e.s, signature: e.g, batch: e.b } }
  })
}

function wireEvents (l: SyncEntry[]): unknown[] {
  return l.map(x => x.proof === undefined ? { e: x.bytes } : { e: x.bytes, s: x.proof.seqno, g: x.proof.signature, ...(x.proof.batch !== undefined ? { b: x.proof.batch } : {}) })
}

function idLists (v: unknown, where: string): RequestIds[] {
  const seen = new Set<string>()
  return list(v, MAX_SYNC_REQUESTS, where).map((raw, i) => {
    const e = entry(raw, `${where}[${i}]`)
    const request = requestName(e.r, `${where}[${i}]`)
    if (seen.has(request)) throw new SyncMessageError(`${where}: request ${request} listed twice`)
    seen.add(request)
    return { request, ids: splitIds(e.ids, `${where}[${i}]`) }
  })
}

function digests (v: unknown): RequestDigest[] {
  const seen = new Set<string>()
  return list(v, MAX_SYNC_REQUESTS, 'digests').map((raw, i) => {
    const e = entry(raw, `digests[${i}]`)
    const request = requestName(e.r, `digests[${i}]`)
    if (seen.has(request)) throw new SyncMessageError(`digests: request ${request} listed twice`)
    seen.add(request)
    if (!Number.isSafeInteger(e.n) || (e.n as number) < 0) throw new SyncMessageError(`digests[${i}]: count must be a non-negative integer`)
    if (!(e.h instanceof Uint8Array) || e.h.byteLength !== SYNC_ID_BYTES) throw new SyncMessageError(`digests[${i}]: hash must be ${SYNC_ID_BYTES} bytes`)
    return { request, count: e.n as number, hash: e.h }
  })
}

/**
 * Wire form: dag-cbor maps with short keys; ids travel as one byte string per request (16 bytes each),
 * an event as { e: bytes, s?: proof seqno, g?: proof signature, b?: a batch proof's digests }.
 */
export function encodeSyncMessage (msg: SyncMessage): Uint8Array {
  const wireIds = (l: RequestIds[]): unknown[] => l.map(x => ({ r: x.request, ids: joinIds(x.ids) }))
  switch (msg.type) {
    case 'digests': return dagCbor.encode({ t: 'digests', d: msg.digests.map(d => ({ r: d.request, n: d.count, h: d.hash })) })
    case 'ids': return dagCbor.encode({ t: 'ids', l: wireIds(msg.lists) })
    case 'push': return dagCbor.encode({ t: 'push', e: wireEvents(msg.events), w: wireIds(msg.want) })
    case 'events': return dagCbor.encode({ t: 'events', e: wireEvents(msg.events) })
    case 'error': return dagCbor.encode({ t: 'error', m: msg.message.slice(0, 1024) })
  }
}

/** Checks everything: types, counts, lengths, duplicates. Throws SyncMessageError saying what and where. */
export function decodeSyncMessage (bytes: Uint8Array): SyncMessage {
  if (bytes.byteLength > MAX_SYNC_MESSAGE_BYTES) throw new SyncMessageError(`message of ${bytes.byteLength} bytes exceeds ${MAX_SYNC_MESSAGE_BYTES}`)
  let raw: unknown
  try {
    raw = dagCbor.decode(bytes)
  } catch (err) {
    throw new SyncMessageError(`not dag-cbor: ${(err as Error).message}`)
  }
  const m = entry(raw, 'message')
  const keys = (...allowed: string[]): void => {
    for (const k of Object.keys(m)) if (!allowed.includes(k)) throw new SyncMessageError(`${String(m.t)}: unknown field "${k}"`)
  }
  switch (m.t) {
    case 'digests': keys('t', 'd'); return { type: 'digests', digests: digests(m.d) }
    case 'ids': keys('t', 'l'); return { type: 'ids', lists: idLists(m.l, 'ids') }
    case 'push': keys('t', 'e', 'w'); return { type: 'push', events: events(m.e, 'push.events'), want: idLists(m.w, 'push.want') }
    case 'events': keys('t', 'e'); return { type: 'events', events: events(m.e, 'events') }
    case 'error':
      keys('t', 'm')
      if (typeof m.m !== 'string' || m.m.length > 1024) throw new SyncMessageError('error: message must be a string of at most 1024 characters')
      return { type: 'error', message: m.m }
    default: throw new SyncMessageError(`unknown message type ${JSON.stringify(m.t)}`)
  }
}
