import { blockKey } from './blocks.ts'
import { StoreFullError } from './errors.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

interface Entry { cid: CID, size: number }

async function collect (chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let total = 0
  for await (const c of chunks) { parts.push(c); total += c.byteLength }
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(total)
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.byteLength }
  return out
}

/**
 * A byte budget over any interface-blockstore. Block sizes live in a Map kept in access order, so the
 * first unprotected entry is the least recently used one; protected (pinned, retained, in transfer)
 * blocks are never evicted.
 */
export class CapacityBlockstore {
  private readonly writing = new Map<string, Promise<void>>()
  readonly inner: Blockstore
  private readonly capacity: number
  private readonly isProtected: (key: string) => boolean
  private readonly entries = new Map<string, Entry>()
  private total = 0
  evictions = 0

  constructor (inner: Blockstore, capacity: number, isProtected: (key: string) => boolean) {
    this.inner = inner
    this.capacity = capacity
    this.isProtected = isProtected
  }

  /** Rebuilds the size index from what the store already holds (a data dir after a restart). */
  async open (): Promise<void> {
    const store = this.inner as Blockstore & { open?: () => Promise<void> }
    if (typeof store.open === 'function') await store.open()
    for await (const pair of this.inner.getAll()) {
      let size = 0
      for await (const c of pair.bytes) size += c.byteLength
      this.record(pair.cid, size)
    }
  }

  async close (): Promise<void> {
    const store = this.inner as Blockstore & { close?: () => Promise<void> }
    if (typeof store.close === 'function') await store.close()
  }

  get blocks (): number { return this.entries.size }
  get bytes (): number { return this.total }

  hasKey (cid: CID): boolean { return this.entries.has(blockKey(cid)) }

  cidOf (key: string): CID | undefined { return this.entries.get(key)?.cid }

  async put (cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    const key = blockKey(cid)
    if (this.entries.has(key)) { this.touch(key); return }
    // one write per block at a time: a push and a fetch of one value can race, and two concurrent writes
    // of one file make blockstore-fs's atomic rename retry for a full second
    const pending = this.writing.get(key)
    if (pending !== undefined) { await pending; return }
    const write = (async () => {
      await this.makeRoom(bytes.byteLength, options)
      await this.inner.put(cid, bytes, options)
      this.record(cid, bytes.byteLength)
    })()
    this.writing.set(key, write)
    try {
      await write
    } finally {
      this.writing.delete(key)
    }
  }

  async get (cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined> {
    const key = blockKey(cid)
    if (!this.entries.has(key)) return undefined
    try {
      const bytes = await collect(this.inner.get(cid, options))
      this.touch(key)
      return bytes
    } catch (err: any) {
      if (err?.name === 'NotFoundError') { this.forget(key); return undefined }
      throw err
    }
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    const key = blockKey(cid)
    await this.inner.delete(cid, options)
    this.forget(key)
  }

  private record (cid: CID, size: number): void {
    const key = blockKey(cid)
    if (this.entries.has(key)) return
    this.entries.set(key, { cid, size })
    this.total += size
  }

  private forget (key: string): void {
    const e = this.entries.get(key)
    if (e == null) return
    this.entries.delete(key)
    this.total -= e.size
  }

  private touch (key: string): void {
    const e = this.entries.get(key)
    if (e == null) return
    this.entries.delete(key)
    this.entries.set(key, e)
  }

  private async makeRoom (size: number, options?: AbortOptions): Promise<void> {
    if (this.total + size <= this.capacity) return
    for (const [key, e] of [...this.entries]) {
      if (this.total + size <= this.capacity) return
      if (this.isProtected(key)) continue
      await this.inner.delete(e.cid, options)
      this.forget(key)
      this.evictions++
    }
    if (this.total + size > this.capacity) {
      throw new StoreFullError(`cannot store ${size} bytes: ${this.total}/${this.capacity} bytes held and everything left is pinned`)
    }
  }
}
