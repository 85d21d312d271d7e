import { CID } from 'multiformats/cid'
import { parseHostToken, ProtocolMessageError } from '../fetch/codec.ts'
import type { ValueMeta } from '../../node/dstore/types.ts'

export interface PushHeader {
  cid: CID
  meta: ValueMeta
  window: number
  /** same-host token made for the receiver: it may take the blocks from the pusher's shared directory */
  host?: Uint8Array
  /** the value's holders after this push (peer ids): a receiver listed there holds it as a replica */
  holders?: string[]
  /**
   * Whether a replica should announce the value in the DHT (someone may look it up by CID alone). Absent
   * (older pushers): only a value outside a request (`meta.request` empty) is announced.
   */
  provide?: boolean
}

function holdersField (v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || v.length > 64 || !v.every(h => typeof h === 'string' && h.length > 0 && h.length <= 128)) {
    throw new ProtocolMessageError('header.holders must be a list of at most 64 peer ids')
  }
  return v as string[]
}

function str (v: unknown, name: string): string {
  if (typeof v !== 'string' || v.length > 1024) throw new ProtocolMessageError(`header.meta.${name} must be a string`)
  return v
}

export function pushHeaderBody (h: PushHeader): Record<string, unknown> {
  const body: Record<string, unknown> = { cid: h.cid, meta: { request: h.meta.request, step: h.meta.step, output: h.meta.output, index: h.meta.index }, window: h.window }
  if (h.host != null) body.host = h.host
  if (h.holders != null) body.holders = h.holders
  if (h.provide != null) body.provide = h.provide
  return body
}

export function parsePushHeader (body: Record<string, unknown>): PushHeader {
  const cid = CID.asCID(body.cid)
  if (cid == null) throw new ProtocolMessageError('header.cid is not a CID')
  const m = body.meta as Record<string, unknown> | null
  if (m === null || typeof m !== 'object') throw new ProtocolMessageError('header.meta is missing')
  const index = m.index
  if (index !== null && (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)) throw new ProtocolMessageError('header.meta.index must be null or a non-negative integer')
  const window = body.window
  if (typeof window !== 'number' || !Number.isInteger(window) || window < 1 || window > 64) throw new ProtocolMessageError('header.window must be an integer in 1..64')
  if (body.provide !== undefined && body.provide !== null && typeof body.provide !== 'boolean') throw new ProtocolMessageError('header.provide must be a boolean')
  const provide = typeof body.provide === 'boolean' ? body.provide : undefined
  return { provide, cid, meta: { request: str(m.request, 'request'), step: str(m.step, 'step'), output: str(m.output, 'output'), index: index as number | null }, window, host: parseHostToken(body.host, 'header.host'), holders: holdersField(body.holders) }
}
