import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import * as cborg from 'cborg'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { EVENTS_VERSION, MAX_COUNT, MAX_DEADLINE_MS, MAX_EVENT_BYTES } from './constants.ts'
import type { DflowEvent } from './index.ts'

export class EventValidationError extends Error {
  static readonly NAME = 'EventValidationError'
  constructor (message: string) {
    super(message)
    this.name = EventValidationError.NAME
  }
}

type Check = (v: unknown) => boolean

const str: Check = v => typeof v === 'string' && v.length > 0 && v.length < 1024
const anyStr: Check = v => typeof v === 'string' && v.length < 64 * 1024
const num: Check = v => typeof v === 'number' && Number.isFinite(v)
const nat: Check = v => Number.isSafeInteger(v) && (v as number) >= 0
/** counts a peer loops over (list lengths, indexes, elements): bounded, so `length: 1e15` cannot stall anyone */
const count: Check = v => nat(v) && (v as number) <= MAX_COUNT
const index: Check = v => v === null || count(v)
const deadline: Check = v => nat(v) && (v as number) > 0 && (v as number) <= MAX_DEADLINE_MS
const bytes = (max: number): Check => v => v instanceof Uint8Array && v.byteLength > 0 && v.byteLength <= max
const signedBy: Check = v => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const r = v as Record<string, unknown>
  return Object.keys(r).length === 3 && bytes(256)(r.key) && bytes(256)(r.sig) && nat(r.ts)
}
const optional = (c: Check): Check => v => v === undefined || c(v)
const parseCid = (v: unknown): CID | undefined => {
  if (typeof v !== 'string') return undefined
  try { return CID.parse(v) } catch { return undefined }
}
const cid: Check = v => parseCid(v) !== undefined
/** the CID each value reference checked so far names, so checkInline does not parse it again (a third of a step-done's check) */
const refCids = new WeakMap<object, CID>()
const valueRef: Check = v => {
  if (v === null || typeof v !== 'object') return false
  const r = v as Record<string, unknown>
  const c = parseCid(r.cid)
  if (c === undefined) return false
  refCids.set(r, c)
  return nat(r.size) && Array.isArray(r.holders) && r.holders.length < 64 && r.holders.every(str) &&
    (r.inline === undefined || r.inline instanceof Uint8Array) && (r.length === undefined || count(r.length)) &&
    Object.keys(r).every(k => VALUE_REF_KEYS.has(k))
}
const VALUE_REF_KEYS = new Set(['cid', 'size', 'holders', 'inline', 'length'])
const recordOf = (c: Check): Check => v => v !== null && typeof v === 'object' && !Array.isArray(v) &&
  Object.entries(v).every(([k, x]) => k.length > 0 && c(x))
const oneOf = (...vals: unknown[]): Check => v => vals.includes(v)

/** instances claimed together in one step-claimed event */
const MAX_CLAIMS_PER_EVENT = 1024
const alsoClaimed: Check = v => Array.isArray(v) && v.length > 0 && v.length <= MAX_CLAIMS_PER_EVENT && v.every(c => {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return false
  const r = c as Record<string, unknown>
  return Object.keys(r).length === 3 && str(r.step) && index(r.index) && nat(r.attempt)
})

const assignedClaims: Check = v => Array.isArray(v) && v.length > 0 && v.length <= MAX_CLAIMS_PER_EVENT && v.every(c => {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return false
  const r = c as Record<string, unknown>
  return Object.keys(r).length === 5 && str(r.step) && index(r.index) && nat(r.attempt) && str(r.peer) && nat(r.incarnation)
})

const base = { from: str, ts: num, request: str }
const step = { step: str, index }
const startId: Check = v => typeof v === 'string' && /^[0-9a-f]{16}$/.test(v)
const fence = { attempt: nat, incarnation: nat, start: optional(startId) }

const SHAPES: Record<DflowEvent['type'], Record<string, Check>> = {
  'request-started': { ...base, workflow: cid, inputs: recordOf(valueRef), mode: oneOf('dataflow', 'control'), store: oneOf('distributed', 'central'), submitter: str, deadlineMs: optional(deadline), auth: optional(signedBy) },
  'step-claimed': { ...base, ...step, attempt: nat, incarnation: nat, slots: optional(nat), start: optional(startId), also: optional(alsoClaimed) },
  'steps-assigned': { ...base, slots: optional(nat), start: optional(startId), claims: assignedClaims },
  'output-ready': { ...base, ...step, ...fence, output: str, value: valueRef },
  'element-posted': { ...base, ...step, ...fence, output: str, element: count, value: valueRef },
  'step-done': { ...base, ...step, ...fence, streams: recordOf(count), coldStartMs: num, readyAt: num, startAt: num, endAt: num, outputs: optional(recordOf(valueRef)) },
  'step-failed': { ...base, ...step, ...fence, error: anyStr },
  'request-done': { ...base, status: oneOf('ok', 'failed'), outputs: recordOf(v => v === null || valueRef(v)), error: optional(anyStr) },
  'request-cancelled': { ...base, reason: anyStr, auth: optional(signedBy) },
  'value-lost': { ...base, cid },
  heartbeat: { from: str, ts: num, incarnation: nat, load: count }
}

const SHAPE_ENTRIES = Object.fromEntries(Object.entries(SHAPES).map(([t, shape]) => [t, Object.entries(shape)])) as Record<DflowEvent['type'], Array<[string, Check]>>

/** The value references an event carries (inputs, an output, an element, a request's results). */
function refsOf (ev: DflowEvent): Array<[string, Record<string, unknown>]> {
  switch (ev.type) {
    case 'request-started': return Object.entries(ev.inputs).map(([k, r]) => [`inputs.${k}`, r as unknown as Record<string, unknown>])
    case 'output-ready':
    case 'element-posted': return [['value', ev.value as unknown as Record<string, unknown>]]
    case 'request-done': return Object.entries(ev.outputs).flatMap(([k, r]) => r === null ? [] : [[`outputs.${k}`, r as unknown as Record<string, unknown>]])
    case 'step-done': return Object.entries(ev.outputs ?? {}).map(([k, r]) => [`outputs.${k}`, r as unknown as Record<string, unknown>])
    default: return []
  }
}

/**
 * An inline value must be what its CID names (dag-cbor, sha2-256 of the bytes), its size must be its byte
 * length, and a list's announced length must be its real one: a forged inline value never reaches a function.
 */
function checkInline (ev: DflowEvent): void {
  for (const [where, ref] of refsOf(ev)) {
    const inline = ref.inline as Uint8Array | undefined
    if (inline === undefined) continue
    const c = refCids.get(ref) ?? CID.parse(ref.cid as string)
    if (c.code !== dagCbor.code || c.multihash.code !== sha256.code) throw new EventValidationError(`${ev.type}: ${where} is inline but ${c} is not a dag-cbor sha2-256 CID`)
    if (inline.byteLength !== ref.size) throw new EventValidationError(`${ev.type}: ${where} is inline with ${inline.byteLength} bytes but claims size ${String(ref.size)}`)
    const digest = createHash('sha256').update(inline).digest()
    const want = c.multihash.digest
    if (digest.byteLength !== want.byteLength || !digest.every((b, i) => b === want[i])) throw new EventValidationError(`${ev.type}: ${where} inline bytes do not hash to ${c}`)
    if (ref.length !== undefined) {
      let value: unknown
      try { value = dagCbor.decode(inline) } catch (err) { throw new EventValidationError(`${ev.type}: ${where} inline bytes are not dag-cbor: ${(err as Error).message}`) }
      if (!Array.isArray(value) || value.length !== ref.length) throw new EventValidationError(`${ev.type}: ${where} claims a list of ${String(ref.length)} elements, the inline value is not one`)
    }
  }
}

/** A hostile value in a message: String() throws on a map without a prototype, and a string may be huge. */
function show (v: unknown): string {
  if (v === null || typeof v !== 'object') return (JSON.stringify(v) ?? String(v)).slice(0, 100)
  return Array.isArray(v) ? 'a list' : v instanceof Uint8Array ? 'bytes' : 'a map'
}

/** Checks shape and field types; unknown fields are rejected so a forged field never slips through. */
export function validateEvent (obj: unknown): DflowEvent {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new EventValidationError('event is not a map')
  const { v, type, ...rest } = obj as Record<string, unknown>
  if (v !== EVENTS_VERSION) throw new EventValidationError(`unsupported event version ${show(v)}`)
  // own keys only: a type of "constructor" or "__proto__" must not find Object's members
  if (typeof type !== 'string' || !Object.hasOwn(SHAPES, type)) throw new EventValidationError(`unknown event type ${show(type)}`)
  const shape = SHAPES[type as DflowEvent['type']]
  for (const [key, check] of SHAPE_ENTRIES[type as DflowEvent['type']]) {
    if (!check(rest[key])) throw new EventValidationError(`${type}: bad or missing field "${key}"`)
  }
  for (const key of Object.keys(rest)) {
    if (!Object.hasOwn(shape, key)) throw new EventValidationError(`${type}: unknown field ${show(key)}`)
  }
  const event = { type, ...rest } as unknown as DflowEvent
  checkInline(event)
  return event
}

/**
 * dag-cbor's own rules (its encodeOptions: canonical key order, float64, no undefined values, CIDs as tag 42) with
 * fields set to undefined left out, as if absent: cborg skips them while it encodes. Copying the event without
 * them first, as before, cost more than the encoding itself (every own event of a peer is encoded here).
 */
const EVENT_ENCODE_OPTIONS = { ...dagCbor.encodeOptions, ignoreUndefinedProperties: true }

export function encodeEvent (event: DflowEvent): Uint8Array {
  return cborg.encode({ v: EVENTS_VERSION, ...event }, EVENT_ENCODE_OPTIONS)
}

export function decodeEvent (bytes: Uint8Array): DflowEvent {
  return validateEvent(decodeBounded(bytes, 'event'))
}

/** dag-cbor of at most MAX_EVENT_BYTES (one event, or a gossip message holding several), or EventValidationError. */
export function decodeBounded (bytes: Uint8Array, what: string): unknown {
  if (bytes.byteLength > MAX_EVENT_BYTES) throw new EventValidationError(`${what} of ${bytes.byteLength} bytes exceeds ${MAX_EVENT_BYTES}`)
  try {
    return dagCbor.decode(bytes)
  } catch (err) {
    throw new EventValidationError(`not dag-cbor: ${(err as Error).message}`)
  }
}
