import fc from 'fast-check'
import { describe, it } from 'vitest'
import { decodeSyncMessage, encodeSyncMessage, type SyncMessage } from '../../protocols/sync/codec.ts'
import { bytesLike, checkCodec, encodeCbor, mutated, TEST_TIMEOUT_MS } from './harness.ts'

// The request-sync codec under the shared harness (its own property tests are test/sync/codec.test.ts): here
// `npm run fuzz` gives it 100 000 cases of raw bytes and of near-valid messages, like every other codec.
const ERR = ['SyncMessageError']
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const request = fc.string({ minLength: 1, maxLength: 40 })
const idLists = fc.uniqueArray(fc.record({ request, ids: fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }).map(hex), { maxLength: 6 }) }), { maxLength: 4, selector: l => l.request })
const entry = fc.record({ bytes: fc.uint8Array({ minLength: 1, maxLength: 80 }), proof: fc.record({ seqno: fc.uint8Array({ minLength: 8, maxLength: 8 }), signature: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) }, { requiredKeys: ['bytes'] })
const message = fc.oneof(
  fc.record({ type: fc.constant('digests' as const), digests: fc.uniqueArray(fc.record({ request, count: fc.nat(), hash: fc.uint8Array({ minLength: 16, maxLength: 16 }) }), { maxLength: 4, selector: d => d.request }) }),
  fc.record({ type: fc.constant('ids' as const), lists: idLists }),
  fc.record({ type: fc.constant('push' as const), events: fc.array(entry, { maxLength: 4 }), want: idLists }),
  fc.record({ type: fc.constant('events' as const), events: fc.array(entry, { maxLength: 4 }) }),
  fc.record({ type: fc.constant('error' as const), message: fc.string({ maxLength: 200 }) })
) as fc.Arbitrary<SyncMessage>

describe('fuzz: request-sync messages (protocols/sync/codec.ts)', () => {
  it('any bytes decode to a sync message or a SyncMessageError', () => {
    checkCodec(bytesLike(message.map(encodeSyncMessage)), decodeSyncMessage, ERR)
    checkCodec(mutated(message as unknown as fc.Arbitrary<Record<string, unknown>>).map(encodeCbor), decodeSyncMessage, ERR)
  }, TEST_TIMEOUT_MS)
})
