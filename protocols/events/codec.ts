import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { EVENTS_VERSION, MAX_EVENT_BYTES } from './constants.ts'
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
const index: Check = v => v === null || nat(v)
const optional = (c: Check): Check => v => v === undefined || c(v)
const cid: Check = v => {
  if (typeof v !== 'string') return false
  try { CID.parse(v); return true } catch { return false }
}
const valueRef: Check = v => {
  if (v === null || typeof v !== 'object') return false
  const r = v as Record<string, unknown>
  return cid(r.cid) && nat(r.size) && Array.isArray(r.holders) && r.holders.length < 64 && r.holders.every(str) &&
    (r.inline === undefined || r.inline instanceof Uint8Array) && (r.length === undefined || nat(r.length))
}
const recordOf = (c: Check): Check => v => v !== null && typeof v === 'object' && !Array.isArray(v) &&
  Object.entries(v).every(([k, x]) => k.length > 0 && c(x))
const oneOf = (...vals: unknown[]): Check => v => vals.includes(v)

const base = { from: str, ts: num, request: str }
const step = { step: str, index }
const startId: Check = v => typeof v === 'string' && /^[0-9a-f]{16}$/.test(v)
const fence = { attempt: nat, incarnation: nat, start: optional(startId) }

const SHAPES: Record<DflowEvent['type'], Record<string, Check>> = {
  'request-started': { ...base, workflow: cid, inputs: recordOf(valueRef), mode: oneOf('dataflow', 'control'), store: oneOf('distributed', 'central'), submitter: str, deadlineMs: optional(nat) },
  'step-claimed': { ...base, ...step, attempt: nat, incarnation: nat, slots: optional(nat), start: optional(startId) },
  'output-ready': { ...base, ...step, ...fence, output: str, value: valueRef },
  'element-posted': { ...base, ...step, ...fence, output: str, element: nat, value: valueRef },
  'step-done': { ...base, ...step, ...fence, streams: recordOf(nat), coldStartMs: num, readyAt: num, startAt: num, endAt: num },
  'step-failed': { ...base, ...step, ...fence, error: anyStr },
  'request-done': { ...base, status: oneOf('ok', 'failed'), outputs: recordOf(v => v === null || valueRef(v)), error: optional(anyStr) },
  'request-cancelled': { ...base, reason: anyStr },
  'value-lost': { ...base, cid },
  heartbeat: { from: str, ts: num, incarnation: nat, load: nat }
}

/** Checks shape and field types; unknown fields are rejected so a forged field never slips through. */
export function validateEvent (obj: unknown): DflowEvent {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new EventValidationError('event is not a map')
  const { v, type, ...rest } = obj as Record<string, unknown>
  if (v !== EVENTS_VERSION) throw new EventValidationError(`unsupported event version ${String(v)}`)
  const shape = SHAPES[type as DflowEvent['type']]
  if (typeof type !== 'string' || shape === undefined) throw new EventValidationError(`unknown event type ${JSON.stringify(type)}`)
  for (const [key, check] of Object.entries(shape)) {
    if (!check(rest[key])) throw new EventValidationError(`${type}: bad or missing field "${key}"`)
  }
  for (const key of Object.keys(rest)) {
    if (!(key in shape)) throw new EventValidationError(`${type}: unknown field "${key}"`)
  }
  return { type, ...rest } as unknown as DflowEvent
}

function dropUndefined (obj: object): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue
    out[k] = (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)) ? dropUndefined(v) : v
  }
  return out
}

export function encodeEvent (event: DflowEvent): Uint8Array {
  return dagCbor.encode({ v: EVENTS_VERSION, ...dropUndefined(event) })
}

export function decodeEvent (bytes: Uint8Array): DflowEvent {
  if (bytes.byteLength > MAX_EVENT_BYTES) throw new EventValidationError(`event of ${bytes.byteLength} bytes exceeds ${MAX_EVENT_BYTES}`)
  let obj: unknown
  try {
    obj = dagCbor.decode(bytes)
  } catch (err) {
    throw new EventValidationError(`not dag-cbor: ${(err as Error).message}`)
  }
  return validateEvent(obj)
}
