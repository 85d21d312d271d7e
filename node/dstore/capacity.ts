import { blockKey, verifyBlockNow } from './blocks.ts'
import { BlockVerificationError, StoreFullError } from './errors.ts'
import type { SharedAttestation, SharedDir } from './shared.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

/**
 * `shared`: the bytes live in the same-host directory; `inner`: they (also) live in the inner store;
 * `memory`: a small block not yet written anywhere (see `putDeferred`)
 */
interface Entry { cid: CID, size: number, shared: boolean, inner: boolean, memory?: Uint8Array }

/** deferred blocks are written this long after the first of them arrives */
const DEFER_MS = 1000
/** a shared block's data-dir copy is made this long after it arrived, if still protected */
const THROUGH_DEFER_MS = 5000
/** ...or at once when this many bytes wait */
const DEFER_MAX_BYTES = 1024 * 1024

export interface SharedTier {
  dir: SharedDir
  /** blocks at least this large go to the shared directory */
  minBytes: number
  /** also write them to the inner store (a data dir: survives a restart) */
  writeThrough: boolean
}

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
  readonly shared?: SharedTier
  /** write-through copies of adopted blocks, finished before close */
  private readonly copying = new Set<Promise<void>>()
  /** keys of deferred blocks held only in memory, in arrival order */
  private readonly deferred = new Set<string>()
  private deferredBytes = 0
  private deferTimer?: ReturnType<typeof setTimeout>
  private flushing: Promise<void> = Promise.resolve()
  /** shared blocks whose inner-store copy is due (copyThrough) */
  private readonly throughDue = new Set<string>()
  private throughTimer?: ReturnType<typeof setTimeout>

  constructor (inner: Blockstore, capacity: number, isProtected: (key: string) => boolean, shared?: SharedTier) {
    this.inner = inner
    this.capacity = capacity
    this.isProtected = isProtected
    this.shared = shared
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
    await this.flushDeferred()
    await Promise.allSettled([...this.copying])
    await this.flushThrough()
    await this.shared?.dir.close()
    const store = this.inner as Blockstore & { close?: () => Promise<void> }
    if (typeof store.close === 'function') await store.close()
  }

  get blocks (): number { return this.entries.size }
  get bytes (): number { return this.total }

  hasKey (cid: CID): boolean { return this.entries.has(blockKey(cid)) }

  cidOf (key: string): CID | undefined { return this.entries.get(key)?.cid }

  sizeOf (cid: CID): number | undefined { return this.entries.get(blockKey(cid))?.size }

  async put (cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    const key = blockKey(cid)
    if (this.entries.has(key)) { this.touch(key); return }
    // one write per block at a time: a push and a fetch of one value can race, and two concurrent writes
    // of one file make blockstore-fs's atomic rename retry for a full second
    const pending = this.writing.get(key)
    if (pending !== undefined) { await pending; return }
    const write = (async () => {
      await this.makeRoom(bytes.byteLength, options)
      const tier = this.shared
      if (tier != null && bytes.byteLength >= tier.minBytes) {
        // the shared file serves the block at once; the data dir's copy (for a restart) follows in the
        // background, as for adopted blocks: a step's outputs were waiting 100-350 ms on a busy disk before
        // their step-done could go out
        await tier.dir.put(key, [bytes])
        this.record(cid, bytes.byteLength, true, false)
        if (tier.writeThrough) this.copyThrough(key)
      } else {
        await this.inner.put(cid, bytes, options)
        this.record(cid, bytes.byteLength)
      }
    })()
    this.writing.set(key, write)
    try {
      await write
    } finally {
      this.writing.delete(key)
    }
  }

  /**
   * Holds a small block in memory and writes it to the inner store within DEFER_MS, if it is still
   * protected then. Meant for the small values of requests, which travel inside their readiness events:
   * most are released when their request finishes, well before the write is due, so they never cost the
   * five filesystem calls of a blockstore-fs put (a profile of a 4-peer fan of 100 showed those as ~5% of a
   * peer's CPU). A crash loses at most the last DEFER_MS of them from this peer's disk; every peer's event
   * log still holds them. close() writes what waits.
   */
  async putDeferred (cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    const key = blockKey(cid)
    if (this.entries.has(key) || this.writing.has(key)) { await this.put(cid, bytes, options); return }
    await this.makeRoom(bytes.byteLength, options)
    if (this.entries.has(key)) return
    this.entries.set(key, { cid, size: bytes.byteLength, shared: false, inner: false, memory: bytes })
    this.total += bytes.byteLength
    this.deferred.add(key)
    this.deferredBytes += bytes.byteLength
    if (this.deferredBytes >= DEFER_MAX_BYTES) void this.flushDeferred().catch(() => {})
    else if (this.deferTimer === undefined) {
      this.deferTimer = setTimeout(() => { void this.flushDeferred().catch(() => {}) }, DEFER_MS)
      this.deferTimer.unref?.()
    }
  }

  /** Writes every deferred block that is still protected; drops the ones nothing protects any more. */
  async flushDeferred (): Promise<void> {
    clearTimeout(this.deferTimer)
    this.deferTimer = undefined
    const keys = [...this.deferred]
    this.deferred.clear()
    this.deferredBytes = 0
    const run = this.flushing.then(async () => {
      for (const key of keys) {
        const e = this.entries.get(key)
        if (e?.memory == null) continue
        // released before it was due: its request is over, nothing will ask for it by this key again
        if (!this.isProtected(key)) { this.forget(key); continue }
        await this.inner.put(e.cid, e.memory)
        e.inner = true
        e.memory = undefined
      }
    })
    this.flushing = run.catch(() => {})
    await run
  }

  /** The same-host attestation of a block held in the shared directory, if it is. */
  sharedFile (cid: CID): SharedAttestation | undefined {
    const key = blockKey(cid)
    return this.entries.get(key)?.shared === true ? this.shared?.dir.attestation(key) : undefined
  }

  /**
   * Takes a block from a same-host holder's directory (a link, no copy) after checking the holder's
   * attestation; BlockVerificationError when the file is not the one attested. With `into`, the block is
   * also read into it at `offset` (the fetch assembles the value as its blocks land).
   */
  async adopt (cid: CID, holder: string, att: SharedAttestation, options?: AbortOptions, into?: { bytes: Uint8Array, offset: number }): Promise<void> {
    const tier = this.shared
    if (tier == null) throw new Error('no shared tier')
    const key = blockKey(cid)
    if (this.entries.has(key)) {
      this.touch(key)
      if (into != null && await this.readInto(cid, into.bytes, into.offset, options) !== att.size) {
        throw new BlockVerificationError(`held block ${key} is not the ${att.size} bytes attested`)
      }
      return
    }
    await this.makeRoom(att.size, options)
    await tier.dir.adopt(key, holder, att)
    this.record(cid, att.size, true, false)
    if (into != null) {
      try {
        await tier.dir.readInto(key, into.bytes, into.offset)
      } catch (err) {
        // changed between the link and the read: not the attested block after all
        await this.delete(cid)
        throw err
      }
    }
    if (tier.writeThrough) this.copyThrough(key)
  }

  /**
   * Takes block `cid` straight from same-host peer `holder`'s shared file, checked against its hash
   * (SharedDir.adoptVerified): answers its bytes, or undefined when this store has it or is writing it, the
   * holder has no such file, or it does not fit without evicting (the caller then fetches as usual).
   */
  adoptVerified (cid: CID, holder: string): Uint8Array | undefined {
    const tier = this.shared
    const key = blockKey(cid)
    if (tier == null || this.entries.has(key) || this.writing.has(key)) return undefined
    const bytes = tier.dir.adoptVerified(key, holder, this.capacity - this.total, b => { verifyBlockNow(cid, b) })
    if (bytes == null) return undefined
    this.record(cid, bytes.byteLength, true, false)
    if (tier.writeThrough) this.copyThrough(key)
    return bytes
  }

  /**
   * Writes a shared block to the inner store too (the data dir, for a restart), later: THROUGH_DEFER_MS after
   * it arrived, if it is still held then. Most blocks are a running request's
   * intermediates, released and collected when it finishes; copying each at once cost a peer ~14% of its CPU on the
   * WfCommons cycles trace (blockstore-fs: mkdir, open, write, rename per block). The shared file serves the
   * block meanwhile, and survives a crash of this process (not of the host). close() copies what is due.
   */
  private copyThrough (key: string): void {
    this.throughDue.add(key)
    if (this.throughTimer === undefined) {
      this.throughTimer = setTimeout(() => { void this.flushThrough().catch(() => {}) }, THROUGH_DEFER_MS)
      this.throughTimer.unref?.()
    }
  }

  /** Copies every shared block that is due and still protected to the inner store. */
  async flushThrough (): Promise<void> {
    clearTimeout(this.throughTimer)
    this.throughTimer = undefined
    const tier = this.shared
    const due = [...this.throughDue]
    this.throughDue.clear()
    if (tier == null) return
    const copy = (async () => {
      for (const key of due) {
        // a block its request released was collected (deleted) by now: nothing to copy
        const e = this.entries.get(key)
        if (e == null || !e.shared || e.inner) continue
        try {
          await this.inner.put(e.cid, await tier.dir.read(key))
          e.inner = true
        } catch {
          // the shared file went (deleted, evicted) before its copy: nothing to keep
        }
      }
    })().finally(() => { this.copying.delete(copy) })
    this.copying.add(copy)
    await copy
  }

  /** Copies a held block into `into` at `offset` (a shared block is read straight from its file). */
  async readInto (cid: CID, into: Uint8Array, offset: number, options?: AbortOptions): Promise<number | undefined> {
    const key = blockKey(cid)
    const e = this.entries.get(key)
    if (e == null) return undefined
    if (e.shared && this.shared != null) {
      if (offset + e.size > into.byteLength) return undefined
      this.touch(key)
      try {
        return await this.shared.dir.readInto(key, into, offset)
      } catch (err) {
        if (!await this.lost(key, e, err)) return undefined
      }
    }
    const bytes = await this.get(cid, options)
    if (bytes == null || offset + bytes.byteLength > into.byteLength) return undefined
    into.set(bytes, offset)
    return bytes.byteLength
  }

  async get (cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined> {
    const key = blockKey(cid)
    const e = this.entries.get(key)
    if (e == null) return undefined
    if (e.memory !== undefined) { this.touch(key); return e.memory }
    if (e.shared && this.shared != null) {
      this.touch(key)
      try {
        return await this.shared.dir.read(key)
      } catch (err) {
        if (!await this.lost(key, e, err)) return undefined
      }
    }
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
    const e = this.entries.get(key)
    this.forget(key)
    await this.remove(key, e ?? { cid, size: 0, shared: false, inner: true }, options)
  }

  /**
   * A shared file that is gone or no longer the one written is dropped: the block is still held when the
   * inner store has a copy (a data dir), else it counts as not held. Answers whether it is still held.
   */
  private async lost (key: string, e: Entry, err: unknown): Promise<boolean> {
    const name = (err as Error)?.name
    if (name !== 'BlockVerificationError' && (err as NodeJS.ErrnoException)?.code !== 'ENOENT') throw err
    await this.shared?.dir.delete(key)
    e.shared = false
    if (!e.inner) this.forget(key)
    return e.inner
  }

  private async remove (key: string, e: Entry, options?: AbortOptions): Promise<void> {
    if (e.shared) await this.shared?.dir.delete(key)
    if (e.inner) await this.inner.delete(e.cid, options)
  }

  private record (cid: CID, size: number, shared = false, inner = true): void {
    const key = blockKey(cid)
    if (this.entries.has(key)) return
    this.entries.set(key, { cid, size, shared, inner })
    this.total += size
  }

  private forget (key: string): void {
    const e = this.entries.get(key)
    if (e == null) return
    this.entries.delete(key)
    this.total -= e.size
    if (e.memory !== undefined && this.deferred.delete(key)) this.deferredBytes -= e.size
  }

  private touch (key: string): void {
    const e = this.entries.get(key)
    if (e == null) return
    this.entries.delete(key)
    this.entries.set(key, e)
  }

  /**
   * Evicts least-recently-used unprotected blocks until `size` more bytes fit. The victims are chosen and
   * forgotten in one synchronous pass over the map (no copy of it, no await in between, so concurrent puts
   * cannot pick the same victims); only then are their bytes deleted.
   */
  private async makeRoom (size: number, options?: AbortOptions): Promise<void> {
    if (this.total + size <= this.capacity) return
    const victims: Array<[string, Entry]> = []
    for (const [key, e] of this.entries) {
      if (this.total + size <= this.capacity) break
      if (this.isProtected(key)) continue
      victims.push([key, e])
      this.forget(key)
      this.evictions++
    }
    if (this.total + size > this.capacity) {
      // nothing was deleted yet: put the victims back (at the LRU end) rather than lose them for nothing
      for (const [key, e] of victims) {
        this.evictions--
        this.entries.set(key, e)
        this.total += e.size
        if (e.memory !== undefined) { this.deferred.add(key); this.deferredBytes += e.size }
      }
      throw new StoreFullError(`cannot store ${size} bytes: ${this.total}/${this.capacity} bytes held and everything left is pinned`)
    }
    for (const [key, e] of victims) await this.remove(key, e, options)
  }
}
