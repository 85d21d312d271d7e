import { MemoryBlockstore } from 'blockstore-core/memory'
import { FsBlockstore } from 'blockstore-fs'
import { join } from 'node:path'
import { decodeValue, type Value } from '../values/codec.ts'
import { blockKey, parseChunkedRoot, type ChunkedRoot, type EncodedValue } from './blocks.ts'
import { CapacityBlockstore, type SharedTier } from './capacity.ts'
import { ValueNotFoundError } from './errors.ts'
import { valueBuffer } from '../../protocols/fetch/transfer.ts'
import { Pins } from './pins.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/** Parsed roots kept so a root is decoded once, not on every send, receive and read. */
const ROOT_CACHE = 4096
/** Chunk files of one value read at once (libuv's pool has 4 threads by default). */
const PARALLEL_READS = 4

/** The blocks of one peer: capacity-bounded blockstore plus pins; no network. */
export class LocalStore {
  readonly pins = new Pins()
  readonly blocks: CapacityBlockstore
  private readonly roots = new Map<string, ChunkedRoot | null>()

  constructor (opts: { capacity: number, dataDir?: string, blockstore?: Blockstore, shared?: SharedTier }) {
    const inner = opts.blockstore ?? (opts.dataDir != null ? new FsBlockstore(join(opts.dataDir, 'blocks')) : new MemoryBlockstore())
    this.blocks = new CapacityBlockstore(inner, opts.capacity, this.pins.isProtected, opts.shared)
  }

  async open (): Promise<void> { await this.blocks.open() }
  async close (): Promise<void> { await this.blocks.close() }

  /** Writes chunks then root, holding them so a concurrent eviction cannot tear the value. */
  /** `deferred`: a small value whose disk write may wait (CapacityBlockstore.putDeferred) */
  async putEncoded (enc: EncodedValue, protect: (keys: string[]) => void, options?: AbortOptions & { deferred?: boolean }): Promise<string[]> {
    const keys = enc.blocks.map(b => blockKey(b.cid))
    const release = this.pins.hold(keys)
    try {
      const chunks = enc.blocks.slice(0, -1)
      await Promise.all(chunks.map(async b => { await this.blocks.put(b.cid, b.bytes, options) }))
      const root = enc.blocks[enc.blocks.length - 1]
      if (options?.deferred === true && enc.blocks.length === 1) await this.blocks.putDeferred(root.cid, root.bytes, options)
      else await this.blocks.put(root.cid, root.bytes, options)
      this.remember(keys[keys.length - 1], enc.root ?? null)
      // protect before releasing the hold: no await in between, so no eviction can slip in
      protect([keys[keys.length - 1], ...keys.slice(0, -1)])
    } finally { release() }
    return keys
  }

  /** The root is written last, so its presence means the value is complete (unless a chunk was evicted since). */
  hasValue (cid: CID): boolean { return this.blocks.hasKey(cid) }

  getBlock = async (cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined> => this.blocks.get(cid, options)

  putBlock = async (cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> => { await this.blocks.put(cid, bytes, options) }

  /** The parsed chunked root of a held value (null: a single-block value; undefined: not held). */
  async root (cid: CID, options?: AbortOptions): Promise<{ root: ChunkedRoot | null, bytes?: Uint8Array } | undefined> {
    const key = blockKey(cid)
    if (!this.blocks.hasKey(cid)) return undefined
    const known = this.roots.get(key)
    if (known !== undefined) return { root: known }
    // a large single block lives in the shared directory: its first byte tells it is no root
    const shared = this.blocks.sharedFile(cid)
    if (shared != null && shared.size > 64 * 1024) {
      const first = await this.blocks.shared?.dir.firstByte(key)
      if (first !== 0xa3) { this.remember(key, null); return { root: null } }
    }
    const bytes = await this.blocks.get(cid, options)
    if (bytes == null) return undefined
    const root = parseChunkedRoot(cid, bytes)
    this.remember(key, root)
    return { root, bytes }
  }

  remember (key: string, root: ChunkedRoot | null): void {
    if (this.roots.size >= ROOT_CACHE) this.roots.delete(this.roots.keys().next().value as string)
    this.roots.set(key, root)
  }

  forgetRoot (key: string): void { this.roots.delete(key) }

  /** Block keys of a held value (root + chunks), or undefined when the root is absent. */
  async blockKeys (cid: CID, options?: AbortOptions): Promise<string[] | undefined> {
    const r = await this.root(cid, options)
    if (r == null) return undefined
    return [blockKey(cid), ...(r.root?.chunks.map(blockKey) ?? [])]
  }

  /**
   * Assembles and decodes a held value; ValueNotFoundError when any block is missing. Chunks are read
   * straight into the value's buffer (shared files) or, when they already lie side by side in one buffer
   * (a put, or a fetch that received into one buffer), the value is a view of it: no extra copy.
   */
  async readValue (cid: CID, options?: AbortOptions): Promise<Value> {
    const r = await this.root(cid, options)
    if (r == null) throw new ValueNotFoundError(`${cid} is not held`)
    if (r.root == null) {
      const bytes = r.bytes ?? await this.blocks.get(cid, options)
      if (bytes == null) throw new ValueNotFoundError(`${cid} is not held`)
      return decodeValue(bytes)
    }
    const chunked = r.root
    const parts: Array<Uint8Array | undefined> = chunked.chunks.map(() => undefined)
    if (chunked.chunks.every(c => this.blocks.sharedFile(c) == null)) {
      for (let i = 0; i < chunked.chunks.length; i++) {
        parts[i] = await this.blocks.get(chunked.chunks[i], options)
        if (parts[i] == null) throw new ValueNotFoundError(`chunk ${chunked.chunks[i]} of ${cid} is not held`)
      }
      const view = contiguous(parts as Uint8Array[], chunked.size)
      if (view != null) return decodeValue(view)
    }
    const whole = valueBuffer(chunked.size)
    let off = 0
    const offsets = chunked.chunks.map((c, i) => {
      const at = off
      off += parts[i]?.byteLength ?? this.blocks.sizeOf(c) ?? 0
      return at
    })
    if (off !== chunked.size) throw new ValueNotFoundError(`chunks of ${cid} are not all held`)
    // shared files are read on the thread pool, several at once (see SharedDir.readInto)
    let next = 0
    const reader = async (): Promise<void> => {
      while (next < chunked.chunks.length) {
        const i = next++
        const p = parts[i]
        if (p != null) { whole.set(p, offsets[i]); continue }
        const n = await this.blocks.readInto(chunked.chunks[i], whole, offsets[i], options)
        if (n == null) throw new ValueNotFoundError(`chunk ${chunked.chunks[i]} of ${cid} is not held`)
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL_READS, chunked.chunks.length) }, reader))
    return decodeValue(whole)
  }

  /** Deletes the blocks of values that lost their protection (blocks shared with a protected value stay). */
  async collect (roots: string[]): Promise<number> {
    let deleted = 0
    for (const root of roots) {
      for (const key of this.pins.blocksOf(root)) {
        if (this.pins.isProtected(key)) continue
        const cid = this.blocks.cidOf(key)
        if (cid == null) continue
        await this.blocks.delete(cid)
        this.roots.delete(key)
        deleted++
      }
      this.pins.drop(root)
    }
    return deleted
  }
}

/** One view over `parts` when they are adjacent slices of one buffer, in order, totalling `size`. */
function contiguous (parts: Uint8Array[], size: number): Uint8Array | undefined {
  if (parts.length === 0) return undefined
  const first = parts[0]
  let end = first.byteOffset
  for (const p of parts) {
    if (p.buffer !== first.buffer || p.byteOffset !== end) return undefined
    end += p.byteLength
  }
  if (end - first.byteOffset !== size) return undefined
  return new Uint8Array(first.buffer, first.byteOffset, size)
}
