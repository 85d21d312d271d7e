import { MemoryBlockstore } from 'blockstore-core/memory'
import { FsBlockstore } from 'blockstore-fs'
import { join } from 'node:path'
import { decodeValue, type Value } from '../values/codec.ts'
import { blockKey, parseChunkedRoot, type EncodedValue } from './blocks.ts'
import { CapacityBlockstore } from './capacity.ts'
import { ValueNotFoundError } from './errors.ts'
import { Pins } from './pins.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/** The blocks of one peer: capacity-bounded blockstore plus pins; no network. */
export class LocalStore {
  readonly pins = new Pins()
  readonly blocks: CapacityBlockstore

  constructor (opts: { capacity: number, dataDir?: string, blockstore?: Blockstore }) {
    const inner = opts.blockstore ?? (opts.dataDir != null ? new FsBlockstore(join(opts.dataDir, 'blocks')) : new MemoryBlockstore())
    this.blocks = new CapacityBlockstore(inner, opts.capacity, this.pins.isProtected)
  }

  async open (): Promise<void> { await this.blocks.open() }
  async close (): Promise<void> { await this.blocks.close() }

  /** Writes chunks then root, holding them so a concurrent eviction cannot tear the value. */
  async putEncoded (enc: EncodedValue, protect: (keys: string[]) => void, options?: AbortOptions): Promise<string[]> {
    const keys = enc.blocks.map(b => blockKey(b.cid))
    const release = this.pins.hold(keys)
    try {
      for (const b of enc.blocks) await this.blocks.put(b.cid, b.bytes, options)
      // protect before releasing the hold: no await in between, so no eviction can slip in
      protect([keys[keys.length - 1], ...keys.slice(0, -1)])
    } finally { release() }
    return keys
  }

  /** The root is written last, so its presence means the value is complete (unless a chunk was evicted since). */
  hasValue (cid: CID): boolean { return this.blocks.hasKey(cid) }

  getBlock = async (cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined> => this.blocks.get(cid, options)

  putBlock = async (cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> => { await this.blocks.put(cid, bytes, options) }

  /** Block keys of a held value (root + chunks), or undefined when the root is absent. */
  async blockKeys (cid: CID, options?: AbortOptions): Promise<string[] | undefined> {
    const root = await this.blocks.get(cid, options)
    if (root == null) return undefined
    const chunked = parseChunkedRoot(cid, root)
    return [blockKey(cid), ...(chunked?.chunks.map(blockKey) ?? [])]
  }

  /** Assembles and decodes a held value; ValueNotFoundError when any block is missing. */
  async readValue (cid: CID, options?: AbortOptions): Promise<Value> {
    const root = await this.blocks.get(cid, options)
    if (root == null) throw new ValueNotFoundError(`${cid} is not held`)
    const chunked = parseChunkedRoot(cid, root)
    if (chunked == null) return decodeValue(root)
    const whole = new Uint8Array(chunked.size)
    let off = 0
    for (const c of chunked.chunks) {
      const bytes = await this.blocks.get(c, options)
      if (bytes == null) throw new ValueNotFoundError(`chunk ${c} of ${cid} is not held`)
      whole.set(bytes, off)
      off += bytes.byteLength
    }
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
        deleted++
      }
      this.pins.drop(root)
    }
    return deleted
  }
}
