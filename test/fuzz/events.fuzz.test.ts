import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { MAX_COUNT } from '../../protocols/events/constants.ts'
import { describe, expect, it } from 'vitest'
import { decodeEvent, encodeEvent, validateEvent } from '../../protocols/events/codec.ts'
import type { DflowEvent } from '../../protocols/events/index.ts'
import { bytesLike, checkCodec, cborValue, mutated, params, TEST_TIMEOUT_MS } from './harness.ts'

const ERR = ['EventValidationError']
const CIDS = ['bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku']
const id = fc.stringMatching(/^[A-Za-z0-9]{1,40}$/)
const nat = fc.nat({ max: 2 ** 40 })
/** list lengths, indexes, element numbers, loads: bounded by MAX_COUNT */
const count = fc.nat({ max: MAX_COUNT })
const index = fc.oneof(fc.constant(null), count)
/** a reference to a value held elsewhere, or one carried inline (then its CID, size and length are its own) */
const valueRef = fc.oneof(
  fc.record({ cid: fc.constantFrom(...CIDS), size: nat, holders: fc.array(id, { maxLength: 4 }), length: fc.option(count, { nil: undefined }) }, { requiredKeys: ['cid', 'size', 'holders'] }),
  fc.tuple(fc.oneof(fc.array(fc.integer(), { maxLength: 5 }), fc.string({ maxLength: 20 })), fc.array(id, { maxLength: 4 })).map(([v, holders]) => {
    const inline = dagCbor.encode(v)
    const cid = CID.createV1(dagCbor.code, Digest.create(sha256.code, createHash('sha256').update(inline).digest())).toString()
    return { cid, size: inline.byteLength, holders, inline, ...(Array.isArray(v) ? { length: v.length } : {}) }
  })
)
const base = { from: id, ts: nat, request: id }
const step = { step: id, index }
/** the fencing of a runner's events (the winning claim's attempt and the claimant's incarnation) */
const fence = { attempt: nat, incarnation: nat }

const validEvent: fc.Arbitrary<DflowEvent> = fc.oneof(
  fc.record({ type: fc.constant('request-started'), ...base, workflow: fc.constantFrom(...CIDS), inputs: fc.dictionary(id, valueRef, { maxKeys: 3 }), mode: fc.constantFrom('dataflow', 'control'), store: fc.constantFrom('distributed', 'central'), submitter: id }),
  fc.record({ type: fc.constant('step-claimed'), ...base, ...step, attempt: nat, incarnation: nat, slots: fc.option(fc.nat({ max: 64 }), { nil: undefined }) }),
  fc.record({ type: fc.constant('steps-assigned'), ...base, claims: fc.array(fc.record({ ...step, attempt: nat, peer: id, incarnation: nat }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant('output-ready'), ...base, ...step, ...fence, output: id, value: valueRef }),
  fc.record({ type: fc.constant('element-posted'), ...base, ...step, ...fence, output: id, element: count, value: valueRef }),
  fc.record({ type: fc.constant('step-done'), ...base, ...step, ...fence, streams: fc.dictionary(id, count, { maxKeys: 3 }), coldStartMs: nat, readyAt: nat, startAt: nat, endAt: nat }),
  fc.record({ type: fc.constant('step-failed'), ...base, ...step, ...fence, error: fc.string({ maxLength: 100 }) }),
  fc.record({ type: fc.constant('request-done'), ...base, status: fc.constantFrom('ok', 'failed'), outputs: fc.dictionary(id, fc.oneof(fc.constant(null), valueRef), { maxKeys: 3 }) }),
  fc.record({ type: fc.constant('request-cancelled'), ...base, reason: fc.string({ maxLength: 100 }) }),
  fc.record({ type: fc.constant('value-lost'), ...base, cid: fc.constantFrom(...CIDS) }),
  fc.record({ type: fc.constant('heartbeat'), from: id, ts: nat, incarnation: nat, load: count })
) as fc.Arbitrary<DflowEvent>

/** drops the undefined optional fields the encoder drops too */
const plain = (ev: DflowEvent): unknown => JSON.parse(JSON.stringify(ev, (_k, v) => v instanceof Uint8Array ? [...v] : v))

describe('fuzz: gossip events (protocols/events/codec.ts)', () => {
  it('a valid event survives encode -> decode unchanged', () => {
    fc.assert(fc.property(validEvent, ev => { expect(plain(decodeEvent(encodeEvent(ev)))).toEqual(plain(ev)) }), params)
  }, TEST_TIMEOUT_MS)

  it('any bytes decode to an event or an EventValidationError', () => {
    checkCodec(bytesLike(validEvent.map(encodeEvent)), decodeEvent, ERR)
  }, TEST_TIMEOUT_MS)

  it('a near-valid event (a field replaced, dropped or added) validates or fails with EventValidationError', () => {
    checkCodec(mutated(validEvent.map(ev => ({ v: 1, ...ev }) as Record<string, unknown>)), validateEvent, ERR)
    checkCodec(cborValue, validateEvent, ERR)
  }, TEST_TIMEOUT_MS)

  it('names of Object members are neither event types nor fields (found by the fuzzer)', () => {
    for (const type of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(() => validateEvent({ v: 1, type })).toThrow(/unknown event type/)
    }
    expect(() => validateEvent({ v: 1, type: 'heartbeat', from: 'a', ts: 1, incarnation: 1, load: 0, toString: 1 })).toThrow(/unknown field/)
    expect(() => validateEvent(Object.assign(Object.create(null), { v: Object.create(null) }))).toThrow(/unsupported event version a map/)
  })
})
