import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { base64 } from 'multiformats/bases/base64'

/** A workflow value: JSON values, bytes, and arrays/objects of them. */
export type Value = null | boolean | number | string | Uint8Array | Value[] | { [key: string]: Value }

export class ValueError extends Error {
  static readonly NAME = 'ValueError'
  constructor (message: string) {
    super(message)
    this.name = ValueError.NAME
  }
}

/**
 * Checks that `value` is a workflow value; `where` names the place for the message
 * (e.g. "step count, output counts").
 */
/** Deeper values are refused: every walk over a value recurses, and a hostile one must not overflow the stack. */
export const MAX_VALUE_DEPTH = 512

function tooDeep (where: string, path: string): ValueError {
  return new ValueError(`${where}: ${path === '' ? 'value' : path} is nested more than ${MAX_VALUE_DEPTH} levels deep`)
}

export function assertValue (value: unknown, where: string, path = '', depth = 0): asserts value is Value {
  if (depth > MAX_VALUE_DEPTH) throw tooDeep(where, path.slice(0, 200))
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValueError(`${where}: ${path === '' ? 'value' : path} is ${value}, which is not a JSON number`)
    return
  }
  if (value instanceof Uint8Array) return
  if (Array.isArray(value)) {
    value.forEach((v, i) => { assertValue(v, where, `${path}[${i}]`, depth + 1) })
    return
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype || (typeof value === 'object' && Object.getPrototypeOf(value) === null)) {
    for (const [k, v] of Object.entries(value as object)) assertValue(v, where, path === '' ? k : `${path}.${k}`, depth + 1)
    return
  }
  const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value
  throw new ValueError(`${where}: ${path === '' ? 'value' : path} is ${kind}; values must be JSON values, Uint8Array, or arrays/objects of them`)
}

/** Canonical (shortest) CBOR header of a byte string of `n` bytes, as dag-cbor writes it. */
function bytesHeader (n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 + n)
  if (n < 0x100) return Uint8Array.of(0x58, n)
  if (n < 0x10000) return Uint8Array.of(0x59, n >> 8, n & 0xff)
  if (n < 0x100000000) return Uint8Array.of(0x5a, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
  const h = new Uint8Array(9)
  h[0] = 0x5b
  new DataView(h.buffer).setBigUint64(1, BigInt(n))
  return h
}

/** Byte strings at least this long take the fast paths below (smaller ones are cheap either way). */
const FAST_BYTES = 4096

/**
 * Deterministic dag-cbor encoding. A byte-string value (the common large value) is header + bytes, written
 * with one copy: cborg would copy it twice (into its buffer, then out). Same bytes as dagCbor.encode.
 */
export function encodeValue (value: Value): Uint8Array {
  if (value instanceof Uint8Array && value.byteLength >= FAST_BYTES) {
    const h = bytesHeader(value.byteLength)
    const out = new Uint8Array(h.byteLength + value.byteLength)
    out.set(h, 0)
    out.set(value, h.byteLength)
    return out
  }
  return dagCbor.encode(value)
}

/**
 * Decodes bytes from a store or a peer: ValueError when they are not dag-cbor, or decode to something that is not
 * a value (a CID link, nesting deeper than MAX_VALUE_DEPTH). An encoding that is exactly one canonical byte string
 * is answered with a view of `bytes`, not a copy: DStore hands out stored bytes read-only (a caller must not write
 * into a value it got).
 */
export function decodeValue (bytes: Uint8Array): Value {
  if (bytes.byteLength > FAST_BYTES && (bytes[0] & 0xe0) === 0x40) {
    const n = bytes.byteLength
    for (const hl of [2, 3, 5, 9]) {
      const payload = n - hl
      if (payload < FAST_BYTES || payload >= 2 ** 53) continue
      const h = bytesHeader(payload)
      if (h.byteLength === hl && h.every((b, i) => b === bytes[i])) return bytes.subarray(hl)
    }
  }
  let value: unknown
  try {
    value = dagCbor.decode<unknown>(bytes)
  } catch (err) {
    throw new ValueError(`not a dag-cbor value: ${(err as Error).message}`)
  }
  assertValue(value, 'decoded value')
  return value
}

/** CIDv1, dag-cbor codec, sha2-256 multihash. */
export async function cidOfBytes (bytes: Uint8Array, codec: number = dagCbor.code): Promise<CID> {
  return CID.createV1(codec, await sha256.digest(bytes))
}

/**
 * Unpadded base64 (RFC 4648 alphabet), as multiformats' `base64.baseEncode` writes it, made by Node's native
 * encoder: the JavaScript one builds the string a character at a time, 180 ms per MiB here, and the young
 * strings it leaves made the views of bench cycles' 1-2 MiB outputs most of a peer's scavenge work.
 */
export function base64Unpadded (bytes: Uint8Array): string {
  const s = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  let end = s.length
  while (end > 0 && s.charCodeAt(end - 1) === 61 /* = */) end--
  return end === s.length ? s : s.slice(0, end)
}

/** JSON view of a value: bytes become {"$bytes": "<base64>"}. */
export function toJsonValue (value: Value): unknown {
  if (value instanceof Uint8Array) return { $bytes: base64Unpadded(value) }
  if (Array.isArray(value)) return value.map(toJsonValue)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = toJsonValue(v)
    return out
  }
  return value
}

/** Inverse of toJsonValue: {"$bytes": "..."} becomes a Uint8Array. ({"$cid"} references are resolved by the store.) */
export function fromJsonValue (json: unknown, where = 'value', depth = 0): Value {
  if (depth > MAX_VALUE_DEPTH) throw tooDeep(where.slice(0, 200), '')
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    const keys = Object.keys(json)
    if (keys.length === 1 && keys[0] === '$bytes') {
      const b = (json as { $bytes: unknown }).$bytes
      if (typeof b !== 'string') throw new ValueError(`${where}: $bytes must be a base64 string`)
      try { return base64.baseDecode(b) } catch { throw new ValueError(`${where}: $bytes is not valid base64`) }
    }
    const out: Record<string, Value> = {}
    for (const [k, v] of Object.entries(json)) {
      // defined, not assigned: a "__proto__" key (JSON.parse makes it an own key) must not become the prototype
      Object.defineProperty(out, k, { value: fromJsonValue(v, `${where}.${k}`, depth + 1), enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  if (Array.isArray(json)) return json.map((v, i) => fromJsonValue(v, `${where}[${i}]`, depth + 1))
  assertValue(json, where)
  return json
}
