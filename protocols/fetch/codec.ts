import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import { FRAME_BLOCK, FRAME_CREDIT, FRAME_REQUEST, FRAME_SHARED, FRAME_STATUS, MAX_CONTROL_BYTES } from './constants.ts'

/** A peer sent something that does not follow the protocol. */
export class ProtocolMessageError extends Error {
  static readonly NAME = 'ProtocolMessageError'
  constructor (message: string) {
    super(message)
    this.name = ProtocolMessageError.NAME
  }
}

export type StatusCode = 'ok' | 'not_found' | 'error' | 'accept' | 'have' | 'reject'
const STATUS_CODES = new Set<string>(['ok', 'not_found', 'error', 'accept', 'have', 'reject'])

export interface StatusMessage { status: StatusCode, message?: string }
export interface FetchRequest {
  cid: CID
  window: number
  /** same-host token (32 bytes): the fetcher shares this host, user and network; shared frames may answer */
  host?: Uint8Array
  /** keep the stream open for another request once this value is sent */
  more: boolean
}
/** A block as a file of the holder's shared directory: the receiver links it after checking these. */
export interface SharedFileInfo { ino: bigint, size: number, mtimeNs: bigint }
export interface CreditMessage { credit: number }

export type Frame =
  | { type: 'request', body: Record<string, unknown> }
  | { type: 'status', body: StatusMessage }
  | { type: 'block', bytes: Uint8Array }
  | { type: 'credit', body: CreditMessage }
  | { type: 'shared', body: SharedFileInfo }

function control (type: number, body: unknown): Uint8Array {
  const enc = dagCbor.encode(body)
  const out = new Uint8Array(enc.byteLength + 1)
  out[0] = type
  out.set(enc, 1)
  return out
}

export const encodeRequestFrame = (body: Record<string, unknown>): Uint8Array => control(FRAME_REQUEST, body)
export const encodeStatusFrame = (body: StatusMessage): Uint8Array =>
  control(FRAME_STATUS, body.message == null ? { status: body.status } : { status: body.status, message: body.message.slice(0, 1000) })
export const encodeCreditFrame = (credit: number): Uint8Array => control(FRAME_CREDIT, { credit })
/** 64-bit inode and nanosecond mtime travel as decimal strings (dag-cbor numbers stop at 2^53 in JS). */
export const encodeSharedFrame = (f: SharedFileInfo): Uint8Array => control(FRAME_SHARED, { ino: f.ino.toString(), size: f.size, mtime: f.mtimeNs.toString() })

function bigintField (v: unknown, name: string): bigint {
  if (typeof v !== 'string' || !/^\d{1,20}$/.test(v)) throw new ProtocolMessageError(`shared.${name} must be a decimal string`)
  return BigInt(v)
}
/** Block frames are not re-encoded: the type byte is prepended as a separate buffer, so no 1 MiB copy. */
export const encodeBlockFrame = (bytes: Uint8Array): Uint8ArrayList => new Uint8ArrayList(Uint8Array.of(FRAME_BLOCK), bytes)

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && CID.asCID(v) == null
}

/** Decodes one frame; throws ProtocolMessageError on anything malformed. */
export function decodeFrame (data: Uint8ArrayList | Uint8Array): Frame {
  const buf = data instanceof Uint8Array ? data : data.subarray()
  if (buf.byteLength < 1) throw new ProtocolMessageError('empty frame')
  const type = buf[0]
  const payload = buf.subarray(1)
  if (type === FRAME_BLOCK) return { type: 'block', bytes: payload }
  if (payload.byteLength > MAX_CONTROL_BYTES) throw new ProtocolMessageError(`control frame of ${payload.byteLength} bytes exceeds ${MAX_CONTROL_BYTES}`)
  let body: unknown
  try { body = dagCbor.decode(payload) } catch (err: any) { throw new ProtocolMessageError(`undecodable frame: ${String(err?.message ?? err)}`) }
  if (!isPlainObject(body)) throw new ProtocolMessageError('frame body is not a map')
  switch (type) {
    case FRAME_REQUEST: return { type: 'request', body }
    case FRAME_STATUS:
      if (typeof body.status !== 'string' || !STATUS_CODES.has(body.status)) throw new ProtocolMessageError('bad status code')
      if (body.message != null && typeof body.message !== 'string') throw new ProtocolMessageError('bad status message')
      return { type: 'status', body: { status: body.status as StatusCode, message: body.message as string | undefined } }
    case FRAME_SHARED:
      if (typeof body.size !== 'number' || !Number.isSafeInteger(body.size) || body.size < 0) throw new ProtocolMessageError('bad shared.size')
      return { type: 'shared', body: { ino: bigintField(body.ino, 'ino'), size: body.size, mtimeNs: bigintField(body.mtime, 'mtime') } }
    case FRAME_CREDIT:
      if (typeof body.credit !== 'number' || !Number.isInteger(body.credit) || body.credit < 1 || body.credit > 1024) throw new ProtocolMessageError('bad credit')
      return { type: 'credit', body: { credit: body.credit } }
    default:
      throw new ProtocolMessageError(`unknown frame type ${type}`)
  }
}

/** Expects a frame of one type; a status frame in place of another type becomes a RemoteStatusError. */
export function expectFrame<T extends Frame['type']> (frame: Frame, type: T): Extract<Frame, { type: T }> {
  if (frame.type === type) return frame as Extract<Frame, { type: T }>
  if (frame.type === 'status') throw new RemoteStatusError(frame.body.status, frame.body.message)
  throw new ProtocolMessageError(`expected a ${type} frame, got ${frame.type}`)
}

/** The remote answered with a non-ok status (not_found, error, reject). */
export class RemoteStatusError extends Error {
  static readonly NAME = 'RemoteStatusError'
  readonly status: StatusCode
  constructor (status: StatusCode, message?: string) {
    super(`remote answered ${status}${message != null ? `: ${message}` : ''}`)
    this.name = RemoteStatusError.NAME
    this.status = status
  }
}

export function parseFetchRequest (body: Record<string, unknown>): FetchRequest {
  const cid = CID.asCID(body.cid)
  if (cid == null) throw new ProtocolMessageError('request.cid is not a CID')
  const window = body.window
  if (typeof window !== 'number' || !Number.isInteger(window) || window < 1 || window > 64) throw new ProtocolMessageError('request.window must be an integer in 1..64')
  if (body.more !== undefined && typeof body.more !== 'boolean') throw new ProtocolMessageError('request.more must be a boolean')
  return { cid, window, host: parseHostToken(body.host, 'request.host'), more: body.more === true }
}

/** Optional same-host token of a fetch request or push header. */
export function parseHostToken (v: unknown, where: string): Uint8Array | undefined {
  if (v === undefined || v === null) return undefined
  if (!(v instanceof Uint8Array) || v.byteLength !== 32) throw new ProtocolMessageError(`${where} must be 32 bytes`)
  return v
}
