import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseBody, parseJsonBody } from '../../node/api/bodies.ts'
import { parseSubmitBody } from '../../node/api/requests.ts'
import { decodeValue, encodeValue, fromJsonValue, toJsonValue, type Value } from '../../node/values/codec.ts'
import { bytesLike, cborValue, checkCodec, encodeCbor, jsonText, mutated, params, TEST_TIMEOUT_MS } from './harness.ts'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
/** what a client sends: JSON text as bytes, or any bytes */
const bodies = fc.oneof(jsonText.map(utf8), fc.uint8Array({ maxLength: 128 }))
const submitBody = fc.record({
  workflow: fc.string({ maxLength: 60 }),
  inputs: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.record({ $cid: fc.string() }), fc.record({ $bytes: fc.base64String() }))),
  requestId: fc.string({ maxLength: 20 }),
  mode: fc.constantFrom('dataflow', 'control'),
  store: fc.constantFrom('distributed', 'central'),
  deadlineMs: fc.integer({ min: 1 })
}, { requiredKeys: ['workflow'] })
const value: fc.Arbitrary<Value> = fc.letrec(tie => ({
  v: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 16 }),
    fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 8 }).filter(k => k !== '$bytes'), tie('v'), { maxKeys: 4 }))
})).v as fc.Arbitrary<Value>

describe('fuzz: HTTP API bodies (node/api) and the value codec behind them', () => {
  it('any body parses as JSON or answers HttpError 400', () => {
    checkCodec(bodies, bytes => parseJsonBody(bytes), ['HttpError'])
    checkCodec(fc.oneof(bodies, bytesLike(cborValue.map(encodeCbor))), bytes => parseBody(bytes, 'application/cbor'), ['HttpError'])
  }, TEST_TIMEOUT_MS)

  it('any JSON body of POST /v1/requests is a submission or an HttpError', () => {
    const parsed = jsonText.map(t => { try { return JSON.parse(t) as unknown } catch { return t } })
    const deepInput = fc.integer({ min: 1, max: 20_000 }).map(n => JSON.parse(`{"workflow":"w","inputs":{"a":${'['.repeat(n)}${']'.repeat(n)}}}`) as unknown)
    checkCodec(fc.oneof(parsed, mutated(submitBody as fc.Arbitrary<Record<string, unknown>>), deepInput), parseSubmitBody, ['HttpError'])
  }, TEST_TIMEOUT_MS)

  it('any JSON is a value or a ValueError (PUT /v1/values, inputs); values round-trip through JSON', () => {
    const parsed = jsonText.map(t => { try { return JSON.parse(t) as unknown } catch { return t } })
    checkCodec(parsed, json => fromJsonValue(json), ['ValueError'])
    fc.assert(fc.property(value, v => { expect(encodeValue(fromJsonValue(JSON.parse(JSON.stringify(toJsonValue(v)))))).toEqual(encodeValue(v)) }), params)
  }, TEST_TIMEOUT_MS)

  it('any bytes fetched from a peer decode to a value or a ValueError', () => {
    checkCodec(bytesLike(value.map(encodeValue)), decodeValue, ['ValueError'])
    checkCodec(cborValue.map(v => { try { return encodeValue(v as Value) } catch { return new Uint8Array() } }), decodeValue, ['ValueError'])
    // nested one-element lists, deeper than any recursion can go
    checkCodec(fc.integer({ min: 1, max: 200_000 }).map(n => { const b = new Uint8Array(n + 1).fill(0x81); b[n] = 0; return b }), decodeValue, ['ValueError'])
  }, TEST_TIMEOUT_MS)

  it('a JSON "__proto__" key is an ordinary key, not a prototype (found by the fuzzer)', () => {
    const v = fromJsonValue(JSON.parse('{"__proto__":{"polluted":1}}')) as Record<string, Value>
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
    expect(Object.keys(v)).toEqual(['__proto__'])
    expect((v as { polluted?: number }).polluted).toBeUndefined()
  })
})
