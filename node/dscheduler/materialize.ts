import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { decodeValue, encodeValue, type Value } from '../values/codec.ts'
import type { Resolved } from './request-state.ts'
import type { DStore, ValueMeta } from '../dstore/types.ts'
import type { ValueRef } from '../../protocols/events/index.ts'

export class ForeachSourceError extends Error {
  static readonly NAME = 'ForeachSourceError'
  constructor (message: string) {
    super(message)
    this.name = ForeachSourceError.NAME
  }
}

/** No live peer holds this value any more (every holder tried, and the DHT asked). */
export class LostValueError extends Error {
  static readonly NAME = 'LostValueError'
  readonly cid: string
  constructor (cid: string, cause?: unknown) {
    super(`value ${cid} is held by no live peer`, { cause })
    this.name = LostValueError.NAME
    this.cid = cid
  }
}

export interface MaterializeOptions {
  signal?: AbortSignal
  pin?: string
}

/** Turns a value reference into the value: inline bytes are decoded, anything else comes from DStore. */
export async function fetchRef (store: DStore, ref: ValueRef, opts: MaterializeOptions): Promise<Value> {
  if (ref.inline !== undefined) return decodeValue(ref.inline)
  try {
    return await store.get(CID.parse(ref.cid), {
      signal: opts.signal,
      pin: opts.pin,
      holders: ref.holders.flatMap(h => { try { return [peerIdFromString(h)] } catch { return [] } })
    })
  } catch (err) {
    if ((err as Error).name === 'ValueNotFoundError' && opts.signal?.aborted !== true) throw new LostValueError(ref.cid, err)
    throw err
  }
}

export async function materialize (store: DStore, r: Resolved, opts: MaterializeOptions): Promise<Value> {
  switch (r.kind) {
    case 'literal': return r.value
    case 'ref': return fetchRef(store, r.ref, opts)
    case 'list': return Promise.all(r.items.map(async item => materialize(store, item, opts)))
    case 'element': {
      const list = await fetchRef(store, r.of, opts)
      if (!Array.isArray(list)) throw new ForeachSourceError(`foreach source ${r.of.cid} is not a list`)
      if (r.index >= list.length) throw new ForeachSourceError(`foreach element ${r.index} is beyond the list's ${list.length} elements`)
      return list[r.index]
    }
  }
}

/** JSON-equality of a workflow value and a condition constant, compared on their canonical encodings. */
export function sameValue (a: Value, b: unknown): boolean {
  try {
    const x = encodeValue(a)
    const y = encodeValue(b as Value)
    return x.byteLength === y.byteLength && x.every((byte, i) => byte === y[i])
  } catch {
    return false
  }
}

/** Stores a value (pinned to its request) and describes it for a readiness event: inline when small, with a list's length. */
export async function storeValue (store: DStore, value: Value, self: string, opts: { pin: string, meta?: ValueMeta }): Promise<ValueRef> {
  const put = await store.put(value, opts)
  const ref: ValueRef = { cid: put.cid.toString(), size: put.size, holders: [self] }
  if (put.inline !== undefined) ref.inline = put.inline
  if (Array.isArray(value)) ref.length = value.length
  return ref
}
