import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import { describe, it } from 'vitest'
import { decodeFrame, expectFrame, parseFetchRequest, encodeRequestFrame, encodeStatusFrame, encodeCreditFrame } from '../../protocols/fetch/codec.ts'
import { parsePushHeader, pushHeaderBody } from '../../protocols/push/codec.ts'
import { CHUNKED_TAG, parseChunkedRoot } from '../../node/dstore/blocks.ts'
import { bytesLike, checkCodec, cborValue, encodeCbor, mutated, TEST_TIMEOUT_MS } from './harness.ts'

const ERR = ['ProtocolMessageError', 'RemoteStatusError']
const cid = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
const fetchRequest = fc.record({ cid: fc.constant(cid), window: fc.integer({ min: 1, max: 64 }) })
const pushHeader = fc.record({
  cid: fc.constant(cid),
  meta: fc.record({ request: fc.string({ maxLength: 20 }), step: fc.string({ maxLength: 20 }), output: fc.string({ maxLength: 20 }), index: fc.oneof(fc.constant(null), fc.nat()) }),
  window: fc.integer({ min: 1, max: 64 })
}).map(h => pushHeaderBody(h))
const frames = fc.oneof(
  fetchRequest.map(r => encodeRequestFrame(r)),
  fc.record({ status: fc.constantFrom('ok', 'not_found', 'error', 'accept', 'have', 'reject'), message: fc.option(fc.string(), { nil: undefined }) }).map(s => encodeStatusFrame(s as any)),
  fc.integer({ min: 1, max: 1024 }).map(encodeCreditFrame),
  // a control frame type byte in front of an arbitrary dag-cbor value
  fc.tuple(fc.integer({ min: 0, max: 8 }), cborValue).map(([t, v]) => { try { return Uint8Array.of(t, ...dagCbor.encode(v)) } catch { return Uint8Array.of(t) } })
)

describe('fuzz: fetch and push frames (protocols/fetch/codec.ts, protocols/push/codec.ts)', () => {
  it('any frame bytes decode to a frame or a ProtocolMessageError', () => {
    checkCodec(bytesLike(frames), bytes => {
      const frame = decodeFrame(bytes)
      for (const type of ['request', 'status', 'block', 'credit'] as const) {
        try { expectFrame(frame, type) } catch (err) { if (!ERR.includes((err as Error).name)) throw err }
      }
      return frame
    }, ERR)
  }, TEST_TIMEOUT_MS)

  it('a near-valid fetch request parses or fails with ProtocolMessageError', () => {
    checkCodec(mutated(fetchRequest), parseFetchRequest, ERR)
    checkCodec(fc.dictionary(fc.string(), cborValue), parseFetchRequest, ERR)
  }, TEST_TIMEOUT_MS)

  it('a near-valid push header (nested meta too) parses or fails with ProtocolMessageError', () => {
    checkCodec(mutated(pushHeader), parsePushHeader, ERR)
    checkCodec(pushHeader.chain(h => mutated(fc.constant(h.meta as Record<string, unknown>)).map(meta => ({ ...h, meta }))), parsePushHeader, ERR)
    checkCodec(fc.dictionary(fc.string(), cborValue), parsePushHeader, ERR)
  }, TEST_TIMEOUT_MS)

  it('a block fetched as a chunked root parses, is no root (null), or fails with BlockVerificationError', () => {
    const rawCid = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
    const root = fc.record({ dflow: fc.constant(CHUNKED_TAG), size: fc.nat(), chunks: fc.array(fc.constantFrom(rawCid, cid), { maxLength: 4 }) })
    const rootCid = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
    checkCodec(bytesLike(mutated(root).map(encodeCbor)), bytes => parseChunkedRoot(rootCid, bytes), ['BlockVerificationError'])
  }, TEST_TIMEOUT_MS)
})
