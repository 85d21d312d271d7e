import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeSubmitAnswer, decodeSubmitMessage, encodeSubmitAnswer, encodeSubmitMessage } from '../../protocols/submit/index.ts'
import type { SubmitAnswer, SubmitMessage } from '../../protocols/submit/index.ts'
import { bytesLike, checkCodec, encodeCbor, mutated, params, TEST_TIMEOUT_MS } from './harness.ts'

const ERR = ['SubmitMessageError']
/** -0 encodes as 0 in dag-cbor, as in JSON */
const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v))
const rid = fc.stringMatching(/^[A-Za-z0-9._:-]{1,40}$/)
const message: fc.Arbitrary<SubmitMessage> = fc.oneof(
  fc.record({ op: fc.constant('submit'), workflow: fc.string({ maxLength: 60 }), inputs: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })), requestId: rid, mode: fc.constantFrom('dataflow', 'control'), store: fc.constantFrom('distributed', 'central'), deadlineMs: fc.integer({ min: 1, max: 1e9 }) }, { requiredKeys: ['op', 'workflow', 'inputs'] }),
  fc.record({ op: fc.constantFrom('status', 'logs'), requestId: rid }),
  fc.record({ op: fc.constant('announce'), event: fc.uint8Array({ maxLength: 64 }) })
) as fc.Arbitrary<SubmitMessage>
const logLine = fc.record({ step: fc.string({ maxLength: 10 }), index: fc.oneof(fc.constant(null), fc.nat()), peer: fc.string({ maxLength: 10 }), line: fc.string({ maxLength: 40 }), ts: fc.nat() })
const view = fc.record({ requestId: rid, workflow: fc.string({ maxLength: 20 }), mode: fc.constant('dataflow'), store: fc.constant('distributed'), submitter: fc.string({ maxLength: 10 }), status: fc.constantFrom('running', 'ok', 'failed'), outputs: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })), steps: fc.array(fc.record({ name: fc.string({ maxLength: 8 }) }), { maxLength: 3 }), totalMs: fc.oneof(fc.constant(null), fc.nat()) })
const answer: fc.Arbitrary<SubmitAnswer> = fc.oneof(
  fc.record({ status: fc.constant('ok'), requestId: rid, view, logs: fc.array(logLine, { maxLength: 3 }) }, { requiredKeys: ['status'] }),
  fc.record({ status: fc.constantFrom('not_found', 'bad_request', 'error'), message: fc.string({ maxLength: 40 }) })
) as fc.Arbitrary<SubmitAnswer>

describe('fuzz: submit protocol messages and answers (protocols/submit/codec.ts)', () => {
  it('valid messages and answers survive a round trip', () => {
    fc.assert(fc.property(message, m => { expect(json(decodeSubmitMessage(encodeSubmitMessage(m)))).toEqual(json(m)) }), params)
    fc.assert(fc.property(answer, a => { expect(decodeSubmitAnswer(encodeSubmitAnswer(a))).toEqual(JSON.parse(JSON.stringify(a))) }), params)
  }, TEST_TIMEOUT_MS)

  it('any bytes decode to a message or a SubmitMessageError', () => {
    checkCodec(bytesLike(message.map(encodeSubmitMessage)), decodeSubmitMessage, ERR)
    checkCodec(mutated(message as fc.Arbitrary<Record<string, unknown>>).map(encodeCbor), decodeSubmitMessage, ERR)
  }, TEST_TIMEOUT_MS)

  it('any bytes decode to an answer or a SubmitMessageError', () => {
    checkCodec(bytesLike(answer.map(encodeSubmitAnswer)), decodeSubmitAnswer, ERR)
    checkCodec(mutated(answer as fc.Arbitrary<Record<string, unknown>>).map(encodeCbor), decodeSubmitAnswer, ERR)
    checkCodec(view.chain(v => mutated(fc.constant(v as Record<string, unknown>))).map(v => encodeCbor({ status: 'ok', view: v })), decodeSubmitAnswer, ERR)
  }, TEST_TIMEOUT_MS)
})
