import { PinsFile } from './pins-file.ts'
import { setMaxListeners } from 'node:events'
import { TypedEventEmitter, type ComponentLogger, type Logger, type PeerId } from '@libp2p/interface'
import { assertValue, decodeValue, type Value } from '../values/codec.ts'
import { blockKey, cidOfKey, encodeBlocks, parseChunkedRoot, verifyBlock } from './blocks.ts'
import { BlockVerificationError, NotStartedError, PushRejectedError, ValueNotFoundError } from './errors.ts'
import { LocalStore } from './local.ts'
import { StoreNetwork, type Placement } from './network.ts'
import { SharedDir } from './shared.ts'
import { closestPeers } from './placement.ts'
import type { AwaitablePush, DStore, GetOptions, PutOptions, PutResult, StoreStats, ValueMeta } from './types.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import type { Blockstore } from 'interface-blockstore'
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import * as dagCbor from '@ipld/dag-cbor'

export interface DStoreConfig {
  /** @default 1048576 (1 MiB) */
  chunkSize: number
  /** peers besides the producer that hold each value. @default 2 */
  replicas: number
  /** values up to this encoded size are returned by put() for inlining in readiness events. @default 16384 */
  inlineLimit: number
  /** bytes of blocks held; unpinned blocks are evicted least-recently-used first beyond it. @default 1 GiB */
  capacity: number
  /** how long results (and values put without a pin) are kept once unpinned. @default 3600000 (1 h) */
  retentionMs: number
  /** blocks go to `<dataDir>/blocks` (FsBlockstore) when set; in memory otherwise */
  dataDir?: string
  /** per-holder transfer timeout. @default 60000 */
  fetchTimeoutMs: number
  /** largest protocol frame. @default chunkSize + 64 KiB */
  maxMessageBytes: number
  /** DHT provide / findProviders timeout. @default 10000 */
  dhtTimeoutMs: number
  /** blocks in flight per transfer before the receiver grants more. @default 8 */
  window: number
  /**
   * Same-host fast path: blocks of at least `sharedMinBytes` live in a directory under `sharedRoot` that
   * every peer of this user and network on the host shares (see shared.ts). @default true
   */
  sharedStore: boolean
  /** @default /dev/shm */
  sharedRoot: string
  /** @default 16384 */
  sharedMinBytes: number
  /** separates networks on one host in the shared directory (e.g. derived from the network key). @default 'default' */
  networkId: string
  /** re-replication pace after a peer death, in bytes per second. @default 134217728 (128 MiB/s) */
  rereplicateBytesPerSec: number
}

export function dstoreConfig (c: Partial<DStoreConfig> = {}): DStoreConfig {
  const chunkSize = c.chunkSize ?? 1024 * 1024
  return {
    chunkSize,
    replicas: c.replicas ?? 2,
    inlineLimit: c.inlineLimit ?? 16 * 1024,
    capacity: c.capacity ?? 1024 * 1024 * 1024,
    retentionMs: c.retentionMs ?? 3_600_000,
    dataDir: c.dataDir,
    fetchTimeoutMs: c.fetchTimeoutMs ?? 60_000,
    maxMessageBytes: c.maxMessageBytes ?? chunkSize + 64 * 1024,
    dhtTimeoutMs: c.dhtTimeoutMs ?? 10_000,
    window: c.window ?? 8,
    sharedStore: c.sharedStore ?? true,
    sharedRoot: c.sharedRoot ?? '/dev/shm',
    sharedMinBytes: c.sharedMinBytes ?? 16 * 1024,
    networkId: c.networkId ?? 'default',
    rereplicateBytesPerSec: c.rereplicateBytesPerSec ?? 128 * 1024 * 1024
  }
}

export interface DStoreServiceInit {
  /** without it DStore is a purely local store (what `dflow run` uses) */
  libp2p?: DflowLibp2p
  logger: ComponentLogger
  config?: Partial<DStoreConfig>
  /** accept a push that this peer was not chosen to replicate (e.g. it claimed a consumer of the value) */
  acceptPush?: (meta: ValueMeta, from: PeerId) => boolean
  /** peers considered for placement. @default libp2p.getPeers() */
  livePeers?: () => PeerId[]
  /** replaces the memory / fs blockstore (tests instrument it) */
  blockstore?: Blockstore
}

export interface ValueReceivedDetail { cid: CID, meta: ValueMeta, from: PeerId }

export interface DStoreEvents {
  /** a pushed value was verified and stored */
  'dstore:value-received': CustomEvent<ValueReceivedDetail>
}

export interface DStoreStats extends StoreStats {
  retained: number
  /** network fetches started (concurrent gets of one CID count once) */
  transfers: number
  /** fetch requests this peer answered with a value */
  served: number
  pushesReceived: number
  verificationFailures: number
  evictions: number
  /** copies made by rereplicate() after holders died */
  rereplications: number
  /** pushes started by this peer (replication, pushTo, re-replication) */
  pushesSent: number
  /** blocks received from a same-host peer's shared directory instead of the stream */
  sharedBlocks: number
  /**
   * bytes moved from same-host peers without libp2p: shared blocks fetched or pushed (linked, not copied) and
   * direct reads; libp2p's traffic counters (`/v1/metrics/traffic`) never see them
   */
  sharedBytes: number
  /** values read from a same-host holder's shared file, checked by their hash, with no message to the holder */
  directReads: number
  /** pushes to consumers left out because they read the value from this peer's shared file */
  pushesSkipped: number
  /** whether the same-host shared directory is in use */
  sharedStore: boolean
}

/** Content-addressed values: local blockstore, fetch/push protocols, DHT announcement, replication, pins. */
export class DStoreService extends TypedEventEmitter<DStoreEvents> implements DStore, AwaitablePush {
  readonly config: DStoreConfig
  private readonly libp2p?: DflowLibp2p
  private readonly log: Logger
  private local_?: LocalStore
  private rereplicating: Promise<number> = Promise.resolve(0)
  private readonly init: DStoreServiceInit
  private network?: StoreNetwork
  private lifetime = new AbortController()
  private readonly inflight = new Map<string, Promise<Uint8Array | undefined>>()
  private readonly background = new Set<Promise<unknown>>()
  private sweepTimer?: ReturnType<typeof setInterval>
  private started = false
  private hits = 0
  /** values read from a same-host holder's shared file with no message (readDirect) */
  private directReads = 0
  private directReadBytes = 0
  /** pushTo calls left out because the receiver reads the value from this peer's shared file */
  private pushesSkipped = 0
  /** blocks read directly from a holder's shared file that did not hash to their CIDs */
  private verificationFailures = 0
  private rereplications = 0
  private misses = 0

  constructor (init: DStoreServiceInit) {
    super()
    this.init = init
    this.libp2p = init.libp2p
    this.config = dstoreConfig(init.config)
    this.log = init.logger.forComponent('dflow:dstore')
    this.local_ = new LocalStore({ capacity: this.config.capacity, dataDir: this.config.dataDir, blockstore: init.blockstore })
  }

  get local (): LocalStore {
    if (this.local_ == null) throw new NotStartedError()
    return this.local_
  }

  /**
   * The shared directory is opened at start (it needs the peer id); a custom blockstore (tests instrument
   * one), no network, `sharedStore: false` or a directory that is not private to this user mean none.
   */
  private async openShared (): Promise<SharedDir | undefined> {
    if (!this.config.sharedStore || this.libp2p == null || this.init.blockstore != null) return undefined
    try {
      return await SharedDir.open({ root: this.config.sharedRoot, namespace: this.config.networkId, peerId: this.libp2p.peerId.toString(), log: this.log })
    } catch (err) {
      this.log.error('same-host shared store disabled: %s', (err as Error).message)
      return undefined
    }
  }

  private pinsFile?: PinsFile

  async start (): Promise<void> {
    if (this.started) return
    this.lifetime = new AbortController()
    // every transfer combines its timeout with this signal
    setMaxListeners(Infinity, this.lifetime.signal)
    const shared = await this.openShared()
    // a peer restarted without a shared directory keeps its (memory) blocks; the shared tier starts empty
    if (shared != null) this.local_ = new LocalStore({
      capacity: this.config.capacity,
      dataDir: this.config.dataDir,
      blockstore: this.init.blockstore,
      shared: shared != null ? { dir: shared, minBytes: this.config.sharedMinBytes, writeThrough: this.config.dataDir != null } : undefined
    })
    await this.local.open()
    if (this.config.dataDir != null) {
      const file = new PinsFile(this.config.dataDir, this.local.pins, this.config.retentionMs, msg => { this.log.error(msg) })
      await file.load()
      this.local.pins.onChange = () => { file.changed() }
      this.pinsFile = file
    }
    if (this.libp2p != null) {
      this.network = new StoreNetwork(this.libp2p, this.local, this.config, this.log, this.lifetime.signal, {
        acceptPush: this.init.acceptPush,
        livePeers: this.init.livePeers,
        landed: (cid, meta, from, replica, keys, provide) => { this.landed(cid, meta, from, replica, keys, provide) },
        isFetching: cid => this.inflight.has(cid.toString())
      })
      await this.network.start()
    }
    const every = Math.max(50, Math.min(60_000, Math.floor(this.config.retentionMs / 4)))
    this.sweepTimer = setInterval(() => { this.track(this.sweep()) }, every)
    this.sweepTimer.unref()
    this.started = true
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.sweepTimer)
    this.lifetime.abort(new NotStartedError('DStore stopped'))
    await this.network?.stop().catch(() => {})
    await Promise.allSettled([...this.background, ...this.inflight.values()])
    this.network = undefined
    await this.pinsFile?.close()
    this.pinsFile = undefined
    await this.local.close()
  }

  async put (value: Value, opts: PutOptions = {}): Promise<PutResult> {
    this.assertStarted()
    assertValue(value, 'put')
    const enc = await encodeBlocks(value, this.config.chunkSize)
    const inline = enc.size <= this.config.inlineLimit
    if (inline && opts.meta !== undefined) {
      // a small value of a request reaches its readers inside its readiness event, not from this store: the
      // local copy (a disk write on a busy machine can take tens of ms) must not delay that event. It is
      // protected now, in order with the request's other pins, not when the write lands: a late pin would
      // outlive the request's unpin
      const keys = enc.blocks.map(b => blockKey(b.cid))
      this.protect([keys[keys.length - 1], ...keys.slice(0, -1)], opts.pin)
      this.track(this.local.putEncoded(enc, () => {}, { deferred: true }).catch(err => { this.log.error('local write of %s failed: %s', enc.cid, (err as Error).message) }))
    } else {
      await this.local.putEncoded(enc, keys => { this.protect(keys, opts.pin) })
    }
    const network = this.network
    // a small value of a request travels inside its readiness event: every peer gets it from there, so
    // announcing and replicating it would only cost DHT queries and pushes. A value with `meta` is named in
    // a readiness event with its holders, so it needs no provider record unless the caller asks for one.
    const provide = opts.provide ?? opts.meta === undefined
    if (network != null && !(inline && opts.meta !== undefined)) this.track(network.announce(enc.cid, opts.meta, provide))
    return { cid: enc.cid, size: enc.size, inline: inline ? enc.encoded : undefined }
  }

  /** Stores a value that arrived inline in an event, after checking it hashes to `cid`. */
  async putBytesInline (cid: CID, bytes: Uint8Array, opts: { pin?: string } = {}): Promise<Value> {
    this.assertStarted()
    await verifyBlock(cid, bytes)
    if (parseChunkedRoot(cid, bytes) != null) throw new BlockVerificationError(`${cid} is a chunked root, not an inline value`)
    const value = decodeValue(bytes)
    await this.local.putEncoded({ cid, size: bytes.byteLength, encoded: bytes, blocks: [{ cid, bytes }] }, keys => { this.protect(keys, opts.pin) })
    return value
  }

  async get (cid: CID, opts: GetOptions = {}): Promise<Value> {
    this.assertStarted()
    opts.signal?.throwIfAborted()
    if (this.local.hasValue(cid)) {
      try {
        const value = await this.local.readValue(cid, { signal: opts.signal })
        this.hits++
        if (opts.pin != null) await this.pinHeld(cid, opts.pin)
        return value
      } catch (err) {
        if ((err as Error).name !== ValueNotFoundError.NAME) throw err
      }
    }
    this.misses++
    if (this.network == null) throw new ValueNotFoundError(`${cid} is not held and this store has no network`)
    const arriving = this.network.receiving.get(cid.toString())
    if (arriving !== undefined) await raceSignal(arriving, opts.signal)
    // a fetch answers the value's verified encoding as it assembled it: decoding that needs no read back
    const fetched = this.local.hasValue(cid) ? undefined : await raceSignal(this.fetchShared(this.network, cid, opts.holders ?? []), opts.signal)
    if (opts.pin != null) await this.pinHeld(cid, opts.pin)
    return fetched != null ? decodeValue(fetched) : this.local.readValue(cid, { signal: opts.signal })
  }

  async has (cid: CID): Promise<boolean> {
    return this.local.hasValue(cid)
  }

  nearby (cid: CID, holders: readonly string[]): boolean {
    if (this.local.hasValue(cid)) return true
    const dir = this.local.blocks.shared?.dir
    return dir != null && cid.code === dagCbor.code && holders.some(h => dir.sameHost(h))
  }

  pushTo (peer: PeerId, cid: CID, meta: ValueMeta): void {
    const network = this.network
    if (network == null) { this.log('pushTo %p ignored: no network', peer); return }
    // a consumer on this host reads a value held in a shared file straight from it when it asks (readDirect):
    // the push would cost a stream for what costs it a link and a hash
    if (this.local.blocks.sharedFile(cid) != null && this.local.blocks.shared?.dir.sameHost(peer.toString()) === true) { this.pushesSkipped++; return }
    this.track(network.push(peer, cid, meta).catch(err => { this.log('push of %s to %p failed - %e', cid, peer, err) }))
  }

  /**
   * The awaited form of pushTo: resolves once the receiver has verified and stored the value (or already
   * held it); PushRejectedError when it refuses, the transport's error otherwise.
   */
  async push (peer: PeerId, cid: CID, meta: ValueMeta, signal?: AbortSignal): Promise<void> {
    this.assertStarted()
    if (this.network == null) throw new NotStartedError('push needs a network')
    const outcome = await this.network.push(peer, cid, meta, signal)
    if (outcome === 'reject') throw new PushRejectedError(`${peer} refused ${cid}`)
  }

  /**
   * After a peer died: only values this peer produced or replicates whose holder list lost a member are
   * moved. For each, the holders still alive stay; the closest live non-holders make up the count; the
   * surviving holder closest to the value pushes (every survivor computes the same, so one copy moves),
   * the others just update their list. Newest placement first, one push at a time, paced to
   * `rereplicateBytesPerSec`. Runs are serialized. Answers how many copies were made.
   */
  async rereplicate (signal?: AbortSignal): Promise<number> {
    const run = this.rereplicating.catch(() => 0).then(async () => this.rereplicateOnce(signal))
    this.rereplicating = run
    return run
  }

  private async rereplicateOnce (signal?: AbortSignal): Promise<number> {
    const network = this.network
    if (network == null || this.libp2p == null) return 0
    const self = this.libp2p.peerId.toString()
    const live = network.peers()
    const alive = new Set([self, ...live.map(String)])
    const changed: Array<[string, Placement]> = []
    for (const [root, p] of network.placed) {
      if (!this.local.pins.isProtected(root) || !this.local.blocks.hasKey(cidOfKey(root, dagCbor.code))) { network.placed.delete(root); continue }
      if (p.holders.every(h => alive.has(h))) continue
      changed.push([root, p])
    }
    changed.sort((a, b) => b[1].at - a[1].at)
    let copies = 0
    for (const [root, p] of changed) {
      if (signal?.aborted === true || this.lifetime.signal.aborted) break
      const cid = cidOfKey(root, dagCbor.code)
      const survivors = p.holders.filter(h => alive.has(h))
      const want = Math.min(this.config.replicas + 1, alive.size)
      const fresh = closestPeers(cid, live.filter(x => !survivors.includes(x.toString())), Math.max(0, want - survivors.length))
      const holders = [...survivors, ...fresh.map(String)]
      network.placed.set(root, { holders, at: p.at, provide: p.provide })
      const pusher = closestPeers(cid, survivors.map(h => peerIdFromString(h)), 1)[0]
      if (pusher?.toString() !== self) continue
      const meta: ValueMeta = { request: this.local.pins.requestsOf(root).find(r => r !== 'bundles') ?? '', step: '', output: '', index: null }
      for (const peer of fresh) {
        const t0 = Date.now()
        // a transport failure is retried (twice, after 0.5 s and 1 s); an answer (have / reject) is final
        let outcome: string = 'error'
        let retried = false
        for (let attempt = 0; attempt < 3 && outcome === 'error'; attempt++) {
          retried = attempt > 0
          if (attempt > 0) await new Promise(resolve => setTimeout(resolve, 500 * attempt))
          if (this.stopping(signal)) break
          outcome = await network.push(peer, cid, meta, signal, holders, p.provide).catch(err => {
            this.log.error('re-replicating %s to %p failed (attempt %d) - %s', cid, peer, attempt + 1, (err as Error).message)
            return 'error'
          })
        }
        if (outcome !== 'ok') this.log.error('re-replicating %s to %p: %s', cid, peer, outcome)
        // "have" after a failed attempt: the copy landed but its final answer was lost
        if (outcome === 'ok' || (outcome === 'have' && retried)) copies++
        // pace: a value of `size` bytes takes at least size / rate
        const size = await this.valueSize(cid)
        const due = (size / this.config.rereplicateBytesPerSec) * 1000 - (Date.now() - t0)
        if (due > 1) await new Promise(resolve => setTimeout(resolve, due))
      }
    }
    this.rereplications += copies
    return copies
  }

  private stopping (signal?: AbortSignal): boolean {
    return signal?.aborted === true || this.lifetime.signal.aborted
  }

  private async valueSize (cid: CID): Promise<number> {
    const r = await this.local.root(cid).catch(() => undefined)
    return r?.root?.size ?? this.local.blocks.sizeOf(cid) ?? 0
  }

  async unpinRequest (request: string, keep: CID[] = []): Promise<void> {
    const freed = this.local.pins.unpinRequest(request, new Set(keep.map(blockKey)), Date.now() + this.config.retentionMs)
    const deleted = await this.local.collect(freed)
    this.log('request %s unpinned: %d values freed, %d blocks collected', request, freed.length, deleted)
  }

  stats (): DStoreStats {
    return {
      blocks: this.local.blocks.blocks,
      bytes: this.local.blocks.bytes,
      pinned: this.local.pins.pinnedValues,
      retained: this.local.pins.retainedValues,
      hits: this.hits,
      rereplications: this.rereplications,
      misses: this.misses,
      transfers: this.network?.transfers ?? 0,
      served: this.network?.served ?? 0,
      pushesReceived: this.network?.pushesReceived ?? 0,
      verificationFailures: (this.network?.verificationFailures ?? 0) + this.verificationFailures,
      evictions: this.local.blocks.evictions,
      pushesSent: this.network?.pushesSent ?? 0,
      sharedBlocks: this.network?.sharedBlocks ?? 0,
      sharedBytes: (this.network?.sharedBytes ?? 0) + this.directReadBytes,
      directReads: this.directReads,
      pushesSkipped: this.pushesSkipped,
      sharedStore: this.local.blocks.shared != null
    }
  }

  /** The peers placement chooses to replicate `cid` to (excluding this peer). */
  replicasFor (cid: CID): PeerId[] { return this.network?.replicasFor(cid) ?? [] }

  /** Collects values whose retention expired. */
  async sweep (): Promise<number> {
    const collected = await this.local.collect(this.local.pins.expired())
    // where replicas of a value were placed matters only while the value is protected (re-replication)
    const placed = this.network?.placed
    if (placed !== undefined) for (const root of placed.keys()) if (!this.local.pins.isProtected(root)) placed.delete(root)
    return collected
  }

  private protect (keys: string[], pin: string | undefined): void {
    if (pin != null) this.local.pins.pin(keys[0], keys, pin)
    else this.local.pins.retain(keys[0], keys, Date.now() + this.config.retentionMs)
  }

  private async pinHeld (cid: CID, pin: string): Promise<void> {
    const keys = await this.local.blockKeys(cid)
    if (keys != null) this.local.pins.pin(keys[0], keys, pin)
  }

  private landed (cid: CID, meta: ValueMeta, from: PeerId, replica: boolean, keys: string[], provide: boolean): void {
    this.protect(keys, meta.request !== '' ? meta.request : undefined)
    // a replica announces itself only where the producer did: for values someone may look up by CID alone
    if (replica && provide && this.network != null) this.track(this.network.provide(cid))
    this.safeDispatchEvent('dstore:value-received', { detail: { cid, meta, from } })
  }

  private async fetchShared (network: StoreNetwork, cid: CID, holders: PeerId[]): Promise<Uint8Array | undefined> {
    const key = cid.toString()
    let p = this.inflight.get(key)
    if (p == null) {
      const direct = this.readDirect(cid, holders)
      if (direct !== undefined) return direct
      p = network.fetchValue(cid, holders).finally(() => { this.inflight.delete(key) })
      this.inflight.set(key, p)
    }
    return p
  }

  /**
   * A value whose holder shares this host is read from the holder's shared file and checked against its CID:
   * no stream and no message (a fetch costs a request and its answer through libp2p on both peers, a push a
   * stream of its own; a link, a read and a hash cost ~0.3 ms per 100 KiB). Only a value's only block: a chunked
   * value's root is small and lives in its holder's memory, so it takes the network (undefined).
   */
  private readDirect (cid: CID, holders: PeerId[]): Uint8Array | undefined {
    const dir = this.local.blocks.shared?.dir
    if (dir == null || cid.code !== dagCbor.code) return undefined
    for (const peer of holders) {
      const holder = peer.toString()
      if (!dir.sameHost(holder)) continue
      let bytes: Uint8Array | undefined
      try {
        bytes = this.local.blocks.adoptVerified(cid, holder)
      } catch (err) {
        this.log('reading %s from the shared file of %s failed - %s', cid, holder, (err as Error).message)
        if ((err as Error).name === BlockVerificationError.NAME) this.verificationFailures++
        continue
      }
      if (bytes === undefined) continue
      if (parseChunkedRoot(cid, bytes) != null) {
        // a root so large it went to a file: its chunks come by fetch
        this.track(this.local.blocks.delete(cid))
        return undefined
      }
      this.local.remember(blockKey(cid), null)
      this.directReads++
      this.directReadBytes += bytes.byteLength
      return bytes
    }
    return undefined
  }

  private track (p: Promise<unknown>): void {
    const tracked = p.catch(err => { this.log('background task failed - %e', err) }).finally(() => { this.background.delete(tracked) })
    this.background.add(tracked)
  }

  private assertStarted (): void {
    if (!this.started) throw new NotStartedError()
  }
}

/** Waits for `p` unless `signal` aborts first (the shared transfer keeps going for other waiters). */
async function raceSignal<T> (p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return p
  signal.throwIfAborted()
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}
