import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as dagCbor from '@ipld/dag-cbor'
import { equals } from 'uint8arrays/equals'
import { createHash } from 'node:crypto'
import { connectAll, randomBytes, startPeer, stopPeer, type TestPeer } from './helpers.ts'
import { encodeBlocks } from '../../node/dstore/blocks.ts'
import { decodeValue, encodeValue } from '../../node/values/codec.ts'

const CS = 64 * 1024
/** payload sizes at and around the chunk boundary, and a value of many chunks */
const SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS, 7 * CS + 3]
/** a byte string of `n` bytes is one block when it fits one chunk, else ceil(n / chunkSize) chunks + a root */
const blocksFor = (n: number): number => n <= CS ? 1 : Math.ceil(n / CS) + 1

describe('chunk boundaries', () => {
  it('the fast byte-string encoding is byte for byte dag-cbor, and decodes back', () => {
    for (const n of [0, 23, 24, 255, 256, 4095, 4096, 4097, 65535, 65536, 70_000, CS * 3 + 7]) {
      const v = randomBytes(n, n + 1)
      const enc = encodeValue(v)
      expect(equals(enc, dagCbor.encode(v))).toBe(true)
      expect(equals(decodeValue(enc) as Uint8Array, v)).toBe(true)
    }
  })

  it('a value that fits one chunk is one block; larger ones are ceil(size / chunkSize) chunks', async () => {
    for (const n of SIZES) {
      const enc = await encodeBlocks(randomBytes(n, 2), CS)
      expect(enc.blocks.length, `${n} bytes`).toBe(blocksFor(n))
      for (const b of enc.blocks.slice(0, -1)) expect(b.bytes.byteLength).toBeLessThanOrEqual(CS + 9)
    }
    // a non-bytes value is measured by its whole encoding
    const obj = { s: 'x'.repeat(CS - 20) }
    expect((await encodeBlocks(obj, CS)).blocks.length).toBe(encodeValue(obj).byteLength <= CS ? 1 : 3)
  })

  it('chunk CIDs are the SHA-256 of their bytes, and chunking a large value lets the event loop run between chunks', async () => {
    const MiB = 1024 * 1024
    const value = randomBytes(9 * MiB, 5)
    let ran = false
    setImmediate(() => { ran = true })
    const enc = await encodeBlocks(value, MiB)
    // hashing 9 MiB yields at least twice (every 4 MiB): a task queued before it ran before it finished
    expect(ran).toBe(true)
    expect(enc.blocks.length).toBe(10)
    for (const b of enc.blocks.slice(0, -1)) {
      expect(b.cid.code).toBe(0x55)
      expect(equals(b.cid.multihash.digest, createHash('sha256').update(b.bytes).digest())).toBe(true)
    }
    expect(equals(decodeValue(enc.encoded) as Uint8Array, value)).toBe(true)
  })

  describe.each([['tcp', false], ['same-host', true]] as const)('round trips over %s', (_, shared) => {
    let a: TestPeer
    let b: TestPeer
    beforeAll(async () => {
      a = await startPeer({ replicas: 0, chunkSize: CS, sharedStore: shared })
      b = await startPeer({ replicas: 0, chunkSize: CS, sharedStore: shared })
      await connectAll([a, b])
    })
    afterAll(async () => { await stopPeer(a); await stopPeer(b) })

    it.each(SIZES)('%i bytes', async n => {
      const value = randomBytes(n, n + 11)
      const { cid } = await a.store.put(value)
      expect(await a.store.local.blockKeys(cid)).toHaveLength(blocksFor(n))
      const got = await b.store.get(cid, { holders: [a.libp2p.peerId] })
      expect(equals(got as Uint8Array, value)).toBe(true)
      expect(await b.store.local.blockKeys(cid)).toHaveLength(blocksFor(n))
      // and read again from b's own store (assembled from its blocks)
      expect(equals(await b.store.get(cid) as Uint8Array, value)).toBe(true)
    })

    it('an object value spanning many chunks', async () => {
      const value = { list: Array.from({ length: 40 }, (_, i) => ({ i, data: randomBytes(9000, i + 1) })) }
      const { cid } = await a.store.put(value)
      expect(await b.store.get(cid, { holders: [a.libp2p.peerId] })).toEqual(value)
    })
  })
})
