import { describe, expect, it } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { MemoryBlockstore } from 'blockstore-core/memory'
import * as raw from 'multiformats/codecs/raw'
import { DStoreService } from '../../node/dstore/dstore.ts'
import { CapacityBlockstore } from '../../node/dstore/capacity.ts'
import { blockKey, encodeBlocks } from '../../node/dstore/blocks.ts'
import { Pins } from '../../node/dstore/pins.ts'
import { cidOfBytes } from '../../node/values/codec.ts'
import { randomBytes, waitFor } from './helpers.ts'

const localStore = (config = {}): DStoreService => new DStoreService({ logger: defaultLogger(), config })

describe('DStore without a network', () => {
  it('round-trips small, inline and chunked values', async () => {
    const s = localStore({ chunkSize: 1024, inlineLimit: 100 })
    await s.start()
    const small = await s.put({ a: 1, b: 'two' })
    expect(small.inline).toBeInstanceOf(Uint8Array)
    expect(await s.get(small.cid)).toEqual({ a: 1, b: 'two' })
    const big = await s.put([randomBytes(5000), 'tail'])
    expect(big.inline).toBeUndefined()
    expect(s.stats().blocks).toBe(1 + 6) // small + (5 chunks + root)
    expect(await s.get(big.cid)).toEqual([randomBytes(5000), 'tail'])
    expect(s.stats().hits).toBe(2)
    await expect(s.get((await encodeBlocks('absent', 1024)).cid)).rejects.toMatchObject({ name: 'ValueNotFoundError' })
    await s.stop()
  })

  it('verifies inline bytes against their CID', async () => {
    const s = localStore()
    await s.start()
    const { cid, inline } = await s.put('hello')
    const t = localStore()
    await t.start()
    expect(await t.putBytesInline(cid, inline!)).toBe('hello')
    await expect(t.putBytesInline(cid, new TextEncoder().encode('nope'))).rejects.toMatchObject({ name: 'BlockVerificationError' })
    await s.stop(); await t.stop()
  })

  it("collects a finished request's intermediates, keeps its results for the retention time", async () => {
    const s = localStore({ chunkSize: 1024, retentionMs: 400 })
    await s.start()
    const inter = await s.put({ step: 'a', blob: randomBytes(3000, 2) }, { pin: 'R' })
    const result = await s.put({ step: 'b', out: 42 }, { pin: 'R' })
    const other = await s.put({ step: 'c', blob: randomBytes(3000, 3) }, { pin: 'S' })
    expect(s.stats().pinned).toBe(3)
    await s.unpinRequest('R', [result.cid])
    expect(await s.has(inter.cid)).toBe(false)
    expect(await s.has(result.cid)).toBe(true)
    expect(await s.has(other.cid)).toBe(true)
    expect(await s.get(result.cid)).toEqual({ step: 'b', out: 42 })
    // after the retention time the sweep collects the result too
    await waitFor(async () => !(await s.has(result.cid)), 'result collected', 5_000)
    expect(await s.has(other.cid)).toBe(true)
    await s.stop()
  })

  it('evicts unpinned blocks least-recently-used first under a capacity limit', async () => {
    const pins = new Pins()
    const store = new CapacityBlockstore(new MemoryBlockstore(), 10_000, pins.isProtected)
    const blocks = await Promise.all([1, 2, 3, 4, 5].map(async i => { const bytes = randomBytes(3000, i); return { cid: await cidOfBytes(bytes, raw.code), bytes } }))
    const [a, b, c, d, e] = blocks
    await store.put(a.cid, a.bytes); await store.put(b.cid, b.bytes); await store.put(c.cid, c.bytes)
    await store.get(a.cid) // a is now more recent than b
    await store.put(d.cid, d.bytes) // 12000 > 10000: evict the LRU one, b
    expect(store.hasKey(b.cid)).toBe(false)
    expect(store.hasKey(a.cid)).toBe(true)
    pins.pin('c', [blockKey(c.cid)], 'R') // c is older than a but pinned
    await store.put(e.cid, e.bytes)
    expect(store.hasKey(c.cid)).toBe(true)
    expect(store.hasKey(a.cid)).toBe(false)
    expect(store.bytes).toBeLessThanOrEqual(10_000)
    expect(store.evictions).toBe(2)
    pins.pin('d', [blockKey(d.cid)], 'R'); pins.pin('e', [blockKey(e.cid)], 'R')
    await expect(store.put(b.cid, b.bytes)).rejects.toMatchObject({ name: 'StoreFullError' })
  })

  it('keeps small deferred blocks in memory and writes only the ones still protected', async () => {
    const pins = new Pins()
    const inner = new MemoryBlockstore()
    const store = new CapacityBlockstore(inner, 10_000, pins.isProtected)
    const [kept, dropped] = await Promise.all([1, 2].map(async i => { const bytes = randomBytes(100, i); return { cid: await cidOfBytes(bytes, raw.code), bytes } }))
    pins.pin('kept', [blockKey(kept.cid)], 'R')
    pins.pin('dropped', [blockKey(dropped.cid)], 'S')
    await store.putDeferred(kept.cid, kept.bytes)
    await store.putDeferred(dropped.cid, dropped.bytes)
    // readable at once, not yet on the inner store
    expect(await store.get(kept.cid)).toEqual(kept.bytes)
    expect(await inner.has(kept.cid)).toBe(false)
    expect(store.bytes).toBe(200)
    pins.unpinRequest('S', new Set(), 0)
    await store.flushDeferred()
    expect(await inner.has(kept.cid)).toBe(true)
    expect(await inner.has(dropped.cid)).toBe(false)
    expect(store.hasKey(dropped.cid)).toBe(false)
    expect(store.bytes).toBe(100)
    expect(await store.get(kept.cid)).toEqual(kept.bytes)
  })

  it('writes deferred blocks that are still protected when closed', async () => {
    const pins = new Pins()
    const inner = new MemoryBlockstore()
    const store = new CapacityBlockstore(inner, 10_000, pins.isProtected)
    const bytes = randomBytes(64, 9)
    const cid = await cidOfBytes(bytes, raw.code)
    pins.pin('v', [blockKey(cid)], 'R')
    await store.putDeferred(cid, bytes)
    await store.close()
    expect(await inner.has(cid)).toBe(true)
  })
})
