import { CID } from 'multiformats/cid'
import { ProtocolMessageError } from '../fetch/codec.ts'
import type { ValueMeta } from '../../node/dstore/types.ts'

export interface PushHeader { cid: CID, meta: ValueMeta, window: number }

function str (v: unknown, name: string): string {
  if (typeof v !== 'string' || v.length > 1024) throw new ProtocolMessageError(`header.meta.${name} must be a string`)
  return v
}

export function pushHeaderBody (h: PushHeader): Record<string, unknown> {
  return { cid: h.cid, meta: { request: h.meta.request, step: h.meta.step, output: h.meta.output, index: h.meta.index }, window: h.window }
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
  return { cid, meta: { request: str(m.request, 'request'), step: str(m.step, 'step'), output: str(m.output, 'output'), index: index as number | null }, window }
}
