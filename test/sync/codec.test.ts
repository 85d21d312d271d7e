import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeSyncMessage, encodeSyncMessage, MAX_SYNC_IDS_PER_REQUEST, MAX_SYNC_MESSAGE_BYTES, MAX_SYNC_REQUESTS, SyncMessageError, type SyncMessage } from '../../protocols/sync/index.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const request = fc.string({ minLength: 1, maxLength: 40 })
const id = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(hex)
const idList = fc.record({ request, ids: fc.array(id, { maxLength: 12 }) })
const idLists = fc.uniqueArray(idList, { maxLength: 8, selector: l => l.request })
const proof = fc.record({
  seqno: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  signature: fc.uint8Array({ minLength: 1, maxLength: 128 }),
  // a batch proof's digests: whole sha-256 digests
  batch: fc.integer({ min: 1, max: 4 }).chain(n => fc.uint8Array({ minLength: n * 32, maxLength: n * 32 }))
}, { requiredKeys: ['seqno', 'signature'] })
const syncEntry = fc.record({ bytes: fc.uint8Array({ minLength: 1, maxLength: 120 }), proof }, { requiredKeys: ['bytes'] })
const events = fc.array(syncEntry, { maxLength: 10 })
const message: fc.Arbitrary<SyncMessage> = fc.oneof(
  fc.record({
    type: fc.constant('digests' as const),
    digests: fc.uniqueArray(fc.record({ request, count: fc.nat(), hash: fc.uint8Array({ minLength: 16, maxLength: 16 }) }), { maxLength: 8, selector: d => d.request })
  }),
  fc.record({ type: fc.constant('ids' as const), lists: idLists }),
  fc.record({ type: fc.constant('push' as const), events, want: idLists }),
  fc.record({ type: fc.constant('events' as const), events }),
  fc.record({ type: fc.constant('error' as const), message: fc.string({ maxLength: 1024 }) })
)

/** decode either answers a message or throws SyncMessageError: never another error, never a crash. */
function decodesOrRefuses (bytes: Uint8Array): void {
  try {
    decodeSyncMessage(bytes)
  } catch (err) {
    expect((err as Error).name).toBe(SyncMessageError.NAME)
  }
}

describe('sync codec', () => {
  it('round-trips every message', () => {
    fc.assert(fc.property(message, msg => {
      expect(decodeSyncMessage(encodeSyncMessage(msg))).toEqual(msg)
    }), { numRuns: 500 })
  })

  it('refuses random bytes with SyncMessageError only', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), decodesOrRefuses), { numRuns: 1000 })
  })

  it('refuses mangled but well-formed dag-cbor with SyncMessageError only', () => {
    const field = fc.oneof(fc.constant('t'), fc.constant('d'), fc.constant('l'), fc.constant('e'), fc.constant('w'), fc.constant('m'), fc.string({ maxLength: 3 }))
    const value = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.record({ r: fc.oneof(request, fc.integer()), n: fc.integer(), h: fc.uint8Array({ maxLength: 20 }), ids: fc.uint8Array({ maxLength: 40 }) }, { requiredKeys: [] })), { maxLength: 4 }))
    const obj = fc.record({ t: fc.constantFrom('digests', 'ids', 'push', 'events', 'error', 'nope') }).chain(base =>
      fc.dictionary(field, value, { maxKeys: 4 }).map(rest => ({ ...rest, ...base })))
    fc.assert(fc.property(obj, o => { decodesOrRefuses(dagCbor.encode(o)) }), { numRuns: 1000 })
  })

  it('says what is wrong and where', () => {
    const bad = (o: unknown): string => {
      try { decodeSyncMessage(dagCbor.encode(o)) } catch (err) { expect(err).toBeInstanceOf(SyncMessageError); return (err as Error).message }
      throw new Error('accepted')
    }
    expect(bad({ t: 'ids', l: [{ r: 'r1', ids: new Uint8Array(17) }] })).toMatch(/ids\[0\].*17 bytes.*multiple of 16/)
    expect(bad({ t: 'ids', l: [{ r: 'r1', ids: new Uint8Array(0) }, { r: 'r1', ids: new Uint8Array(0) }] })).toMatch(/r1 listed twice/)
    expect(bad({ t: 'ids', l: [{ r: 'r1', ids: new Uint8Array(16 * (MAX_SYNC_IDS_PER_REQUEST + 1)) }] })).toMatch(/ids exceed/)
    expect(bad({ t: 'digests', d: Array.from({ length: MAX_SYNC_REQUESTS + 1 }, (_, i) => ({ r: `r${i}`, n: 0, h: new Uint8Array(16) })) })).toMatch(/entries exceed/)
    expect(bad({ t: 'digests', d: [{ r: 'r1', n: 1, h: new Uint8Array(8) }] })).toMatch(/digests\[0\]: hash must be 16 bytes/)
    expect(bad({ t: 'digests', d: [{ r: 'r1', n: -1, h: new Uint8Array(16) }] })).toMatch(/count/)
    expect(bad({ t: 'digests', d: [{ r: '', n: 1, h: new Uint8Array(16) }] })).toMatch(/bad request id/)
    expect(bad({ t: 'events', e: [{ e: new Uint8Array(0) }] })).toMatch(/events\[0\]/)
    expect(bad({ t: 'events', e: [new Uint8Array(3)] })).toMatch(/events\[0\] must be a map/)
    expect(bad({ t: 'push', e: [{ e: new Uint8Array(3), s: new Uint8Array(7), g: new Uint8Array(64) }], w: [] })).toMatch(/push.events\[0\]: proof seqno must be 8 bytes/)
    expect(bad({ t: 'push', e: [{ e: new Uint8Array(3), s: new Uint8Array(8) }], w: [] })).toMatch(/proof signature/)
    expect(bad({ t: 'push', e: [{ e: new Uint8Array(3), s: new Uint8Array(8), g: new Uint8Array(64), b: new Uint8Array(33) }], w: [] })).toMatch(/proof batch must be 1 to 256 digests of 32 bytes/)
    expect(bad({ t: 'push', e: [{ e: new Uint8Array(3), s: new Uint8Array(8), g: new Uint8Array(64), b: new Uint8Array(257 * 32) }], w: [] })).toMatch(/proof batch/)
    expect(bad({ t: 'events', e: [{ e: new Uint8Array(3), x: 1 }] })).toMatch(/unknown field "x"/)
    expect(bad({ t: 'events', e: [], extra: 1 })).toMatch(/unknown field "extra"/)
    expect(bad({ t: 'hello' })).toMatch(/unknown message type/)
    expect(bad([1, 2])).toMatch(/must be a map/)
    expect(() => decodeSyncMessage(new Uint8Array(MAX_SYNC_MESSAGE_BYTES + 1))).toThrow(/exceeds/)
    expect(() => encodeSyncMessage({ type: 'ids', lists: [{ request: 'r', ids: ['xyz'] }] })).toThrow(SyncMessageError)
  })
})
