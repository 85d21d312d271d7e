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

/** Deterministic dag-cbor encoding. */
export function encodeValue (value: Value): Uint8Array {
  return dagCbor.encode(value)
}

/**
 * Decodes bytes from a store or a peer: ValueError when they are not dag-cbor, or decode to something that is not
 * a value (a CID link, nesting deeper than MAX_VALUE_DEPTH).
 */
export function decodeValue (bytes: Uint8Array): Value {
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

/** JSON view of a value: bytes become {"$bytes": "<base64>"}. */
export function toJsonValue (value: Value): unknown {
  if (value instanceof Uint8Array) return { $bytes: base64.baseEncode(value) }
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
