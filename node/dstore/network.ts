import { FetchSessions, handleFetch, FETCH_PROTOCOL, type BlockReader, type BlockWriter, type SharedFileInfo } from '../../protocols/fetch/index.ts'
import { handlePush, pushBlocks, PUSH_PROTOCOL, type PushDecision, type PushOutcome } from '../../protocols/push/index.ts'
import { blockKey, parseChunkedRoot } from './blocks.ts'
import { BlockVerificationError, ValueNotFoundError } from './errors.ts'
import { closestPeers } from './placement.ts'
import type { DStoreConfig } from './dstore.ts'
import type { LocalStore } from './local.ts'
import type { ValueMeta } from './types.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import type { AbortOptions, Logger, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { anyWithTimeout } from '../../protocols/util/timeout-signal.ts'

export interface NetworkHooks {
  acceptPush?: (meta: ValueMeta, from: PeerId) => boolean
  livePeers?: () => PeerId[]
  /**
   * A pushed value was verified and stored; `replica` when this peer was chosen to hold it, `provide` when
   * it should also announce it in the DHT (the pusher's say, or a value outside a request).
   */
  landed: (cid: CID, meta: ValueMeta, from: PeerId, replica: boolean, keys: string[], provide: boolean) => void
  /** whether this peer is fetching `cid` right now */
  isFetching?: (cid: CID) => boolean
}

export const NO_META: ValueMeta = { request: '', step: '', output: '', index: null }

function msg (err: unknown): string { return err instanceof Error ? `${err.name}: ${err.message}` : String(err) }

/**
 * Where a value is placed: its holders (this peer among them) as of the last placement, and when; `provide`:
 * its holders announce it in the DHT (re-replication tells new holders the same).
 */
export interface Placement { holders: string[], at: number, provide: boolean }

/** DStore's use of the network: the two protocols, DHT provide / find, replication, the same-host fast path. */
export class StoreNetwork {
  transfers = 0
  served = 0
  pushesReceived = 0
  /** holders whose blocks did not hash to their CIDs (or whose shared files were not the attested ones) */
  verificationFailures = 0
  /** blocks taken from a same-host peer's shared directory instead of the stream */
  sharedBlocks = 0
  /** their bytes: data that moved between peers without crossing libp2p (its traffic counters never see it) */
  sharedBytes = 0
  /** pushes this peer started (any outcome) */
  pushesSent = 0
  /** values this peer produced or replicates, with their holders: what re-replication looks at */
  readonly placed = new Map<string, Placement>()
  private readonly libp2p: DflowLibp2p
  private readonly local: LocalStore
  private readonly cfg: DStoreConfig
  private readonly log: Logger
  private readonly signal: AbortSignal
  private readonly hooks: NetworkHooks
  private readonly reader: BlockReader
  /** fetch streams kept open per holder for the next fetch */
  readonly sessions: FetchSessions

  constructor (libp2p: DflowLibp2p, local: LocalStore, cfg: DStoreConfig, log: Logger, signal: AbortSignal, hooks: NetworkHooks) {
    this.libp2p = libp2p
    this.local = local
    this.cfg = cfg
    this.log = log
    this.signal = signal
    this.hooks = hooks
    const shared = local.blocks.shared?.dir
    this.reader = {
      getBlock: local.getBlock,
      plan: async (cid, options) => {
        const r = await local.root(cid, options)
        return r == null ? undefined : { rootBytes: r.bytes, chunks: r.root?.chunks ?? [] }
      },
      sharedFile: cid => local.blocks.sharedFile(cid),
      isLocalToken: token => shared?.isLocalToken(token) ?? false
    }
    this.sessions = new FetchSessions(async (peer, signal) => this.libp2p.dialProtocol(peer, FETCH_PROTOCOL, { signal }), () => this.init)
  }

  private get init (): { maxMessageBytes: number, timeoutMs: number, window: number } {
    // a serve or push may take as long as it moves (the fetching side abandons a stalled one)
    return { maxMessageBytes: this.cfg.maxMessageBytes, timeoutMs: Math.max(this.cfg.fetchTimeoutMs, FETCH_MAX_MS), window: this.cfg.window }
  }

  async start (): Promise<void> {
    await this.libp2p.handle(FETCH_PROTOCOL, (stream) => {
      void handleFetch(stream, this.reader, this.init, this.signal, this.log, () => { this.served++ })
    }, { maxInboundStreams: 64, maxOutboundStreams: 64 })
    await this.libp2p.handle(PUSH_PROTOCOL, (stream, connection) => { void this.receivePush(stream, connection.remotePeer) },
      { maxInboundStreams: 64, maxOutboundStreams: 64 })
  }

  async stop (): Promise<void> {
    this.sessions.close()
    await this.libp2p.unhandle(FETCH_PROTOCOL)
    await this.libp2p.unhandle(PUSH_PROTOCOL)
  }

  peers (): PeerId[] {
    return this.hooks.livePeers?.() ?? this.libp2p.getPeers()
  }

  /** The `replicas` peers chosen to hold `cid` besides `exclude` (the producer / sender) and this peer. */
  replicasFor (cid: CID, exclude: PeerId[] = []): PeerId[] {
    // no copies kept (`--replicas 0`): nothing to rank, and listing the live peers costs a parse per peer per put
    if (this.cfg.replicas <= 0) return []
    const self = this.libp2p.peerId
    const skip = new Set([self, ...exclude].map(p => p.toString()))
    return closestPeers(cid, this.peers().filter(p => !skip.has(p.toString())), this.cfg.replicas)
  }

  private isReplica (cid: CID, from: PeerId): boolean {
    if (this.cfg.replicas <= 0) return false
    const self = this.libp2p.peerId
    const candidates = [self, ...this.peers().filter(p => !p.equals(from))]
    return closestPeers(cid, candidates, this.cfg.replicas).some(p => p.equals(self))
  }

  async provide (cid: CID): Promise<void> {
    const signal = anyWithTimeout([this.signal], this.cfg.dhtTimeoutMs)
    try {
      await this.libp2p.contentRouting.provide(cid, { signal })
    } catch (err) {
      this.log('provide %s failed - %s', cid, msg(err))
    }
  }

  /**
   * Background work after a local put: replicate, and announce in the DHT only when asked (a value named in
   * a readiness event is found through the holders listed there and through placement). Never throws.
   */
  async announce (cid: CID, meta: ValueMeta | undefined, provide: boolean): Promise<void> {
    const replicas = this.replicasFor(cid)
    const holders = [this.libp2p.peerId.toString(), ...replicas.map(String)]
    if (replicas.length > 0) this.placed.set(blockKey(cid), { holders, at: Date.now(), provide })
    await Promise.allSettled([
      provide ? this.provide(cid) : undefined,
      ...replicas.map(async peer => this.push(peer, cid, meta ?? NO_META, undefined, holders, provide).catch(err => {
        this.log('replicating %s to %p failed - %s', cid, peer, msg(err))
      }))
    ])
  }

  /** Sends a held value to `peer`. Resolves with the receiver's answer; rejects on transport/verification failure. */
  async push (peer: PeerId, cid: CID, meta: ValueMeta, callerSignal?: AbortSignal, holders?: string[], provide?: boolean): Promise<PushOutcome> {
    const signal = anyWithTimeout([this.signal, callerSignal], this.cfg.fetchTimeoutMs)
    const plan = await this.reader.plan?.(cid, { signal })
    if (plan == null) throw new ValueNotFoundError(`cannot push ${cid}: not held`)
    this.pushesSent++
    const stream = await this.libp2p.dialProtocol(peer, PUSH_PROTOCOL, { signal })
    const host = this.tokenFor(peer)
    const outcome = await pushBlocks(stream, cid, meta, this.reader, plan, this.init, signal, { host, holders, provide })
    this.log('pushed %s to %p: %s', cid, peer, outcome)
    return outcome
  }

  private readonly tokens = new Map<string, Uint8Array>()

  /** The same-host token for `peer` (a hash; computed once per peer). */
  private tokenFor (peer: PeerId): Uint8Array | undefined {
    const dir = this.local.blocks.shared?.dir
    if (dir == null) return undefined
    const key = peer.toString()
    let token = this.tokens.get(key)
    if (token == null) {
      if (this.tokens.size >= 4096) this.tokens.clear()
      token = dir.tokenFor(key)
      this.tokens.set(key, token)
    }
    return token
  }

  /** Pushes being received, by CID: a get of that CID waits for one instead of fetching it again. */
  readonly receiving = new Map<string, Promise<void>>()

  /** Writes verified blocks, and takes same-host blocks from `from`'s shared directory (checked, counted). */
  private writer (from: PeerId, onBlock: (key: string) => void): BlockWriter {
    const shared = this.local.blocks.shared
    return {
      putBlock: async (cid, bytes, options) => {
        onBlock(blockKey(cid))
        await this.local.putBlock(cid, bytes, options)
      },
      adoptShared: shared == null
        ? undefined
        : async (cid: CID, file: SharedFileInfo, options: AbortOptions & { root?: boolean, into?: Uint8Array, offset?: number }) => {
          const key = blockKey(cid)
          onBlock(key)
          const into = options.into ?? (options.root === true ? new Uint8Array(file.size) : undefined)
          const offset = options.offset ?? 0
          await this.local.blocks.adopt(cid, from.toString(), file, options, into != null ? { bytes: into, offset } : undefined)
          if (options.root === true && into != null) {
            // the whole value was read: a chunked root must come as bytes (its chunks would be missing)
            const bytes = into.subarray(offset, offset + file.size)
            if (parseChunkedRoot(cid, bytes) != null) {
              await this.local.blocks.delete(cid)
              throw new BlockVerificationError(`${cid} came as a shared file but is a chunked root`)
            }
            this.local.remember(key, null)
          }
          this.sharedBlocks++
          this.sharedBytes += file.size
        }
    }
  }

  private async receivePush (stream: Parameters<typeof handlePush>[0], from: PeerId): Promise<void> {
    const releases: Array<() => void> = []
    const keys: string[] = []
    let replica = false
    let holders: string[] | undefined
    let provide = false
    let receiving: { key: string, done: () => void } | undefined
    const self = this.libp2p.peerId.toString()
    const writer = this.writer(from, key => { keys.push(key); releases.push(this.local.pins.hold([key])) })
    try {
      await handlePush(stream, from, {
        ...writer,
        isLocalToken: token => this.local.blocks.shared?.dir.isLocalToken(token) ?? false,
        maxValueBytes: this.cfg.capacity,
        decide: async (cid, meta, sender, header): Promise<PushDecision> => {
          // a value already held, already arriving by another push or being fetched needs no second transfer
          if (this.local.hasValue(cid) || this.receiving.has(cid.toString()) || this.hooks.isFetching?.(cid) === true) return 'have'
          // the pusher names the holders (placement or re-replication); older pushers leave it to placement
          replica = header.holders != null ? header.holders.includes(self) && header.holders.includes(sender.toString()) : this.isReplica(cid, sender)
          if (replica) holders = header.holders ?? [sender.toString(), self]
          provide = replica && (header.provide ?? meta.request === '')
          if (replica || this.hooks.acceptPush?.(meta, sender) === true) {
            const { promise, resolve } = Promise.withResolvers<void>()
            receiving = { key: cid.toString(), done: resolve }
            this.receiving.set(receiving.key, promise)
            return 'accept'
          }
          return 'reject'
        },
        landed: async (cid, meta, sender, result) => {
          this.pushesReceived++
          if (result.sharedBlocks > 0) this.log('push of %s from %p: %d of %d blocks from the shared directory', cid, sender, result.sharedBlocks, result.blocks)
          if (replica && holders != null) this.placed.set(blockKey(cid), { holders, at: Date.now(), provide })
          // the root arrives last; pins list it first
          this.hooks.landed(cid, meta, sender, replica, [keys[keys.length - 1], ...keys.slice(0, -1)], provide)
        }
      }, this.init, this.signal, this.log)
    } finally {
      for (const r of releases) r()
      if (receiving !== undefined) {
        this.receiving.delete(receiving.key)
        receiving.done()
      }
    }
  }

  /**
   * Fetches `cid` into the local store: given holders in order, then the peers placement chose,
   * then DHT providers. A holder that fails or serves a wrong block is skipped. Answers the value's
   * verified encoding, assembled in one buffer as it arrived (the caller decodes it, no read back).
   */
  async fetchValue (cid: CID, holders: PeerId[]): Promise<Uint8Array | undefined> {
    this.transfers++
    const self = this.libp2p.peerId.toString()
    const tried = new Set<string>([self])
    const attempt = async (peer: PeerId): Promise<{ bytes?: Uint8Array } | undefined> => {
      if (tried.has(peer.toString())) return undefined
      tried.add(peer.toString())
      return this.fetchFrom(peer, cid, true)
    }
    for (const peer of [...holders, ...this.replicasFor(cid)]) {
      const got = await attempt(peer)
      if (got != null) return got.bytes
    }
    const signal = anyWithTimeout([this.signal], this.cfg.dhtTimeoutMs)
    try {
      for await (const provider of this.libp2p.contentRouting.findProviders(cid, { signal })) {
        if (tried.has(provider.id.toString())) continue
        if (provider.multiaddrs.length > 0) await this.libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs }).catch(() => {})
        const got = await attempt(provider.id)
        if (got != null) return got.bytes
      }
    } catch (err) {
      this.log('finding providers of %s failed - %s', cid, msg(err))
    }
    this.signal.throwIfAborted()
    throw new ValueNotFoundError(`no holder could deliver ${cid} (tried ${tried.size - 1} peers)`)
  }

  /**
   * One holder. With a shared directory the request carries the same-host token made for that holder; a
   * shared file that fails its check makes the whole fetch fail, and it is retried once over the stream.
   */
  private async fetchFrom (peer: PeerId, cid: CID, sameHost: boolean): Promise<{ bytes?: Uint8Array } | undefined> {
    // a transfer fails when it stalls (no block for FETCH_IDLE_MS), not when it is merely long: a large value
    // moving slowly but steadily is not a lost one
    const idle = new AbortController()
    let idleTimer = setTimeout(() => { idle.abort(new Error(`no block from ${peer.toString()} for ${FETCH_IDLE_MS} ms`)) }, FETCH_IDLE_MS)
    const touch = (): void => {
      clearTimeout(idleTimer)
      idleTimer = setTimeout(() => { idle.abort(new Error(`no block from ${peer.toString()} for ${FETCH_IDLE_MS} ms`)) }, FETCH_IDLE_MS)
    }
    const signal = anyWithTimeout([this.signal, idle.signal], Math.max(this.cfg.fetchTimeoutMs, FETCH_MAX_MS))
    const releases: Array<() => void> = []
    const t0 = Date.now()
    const host = sameHost ? this.tokenFor(peer) : undefined
    try {
      let t1 = t0
      let reused = false
      const writer = this.writer(peer, key => { touch(); releases.push(this.local.pins.hold([key])) })
      const result = await this.sessions.fetch(peer, cid, writer, signal, { host, maxValueBytes: this.cfg.capacity }, kept => { t1 = Date.now(); reused = kept; touch() })
      this.log('fetched %s from %p: %s %d ms, transfer %d ms, %d/%d blocks from the shared directory', cid, peer, reused ? 'kept stream' : 'dial', t1 - t0, Date.now() - t1, result.sharedBlocks, result.blocks)
      return { bytes: result.bytes }
    } catch (err) {
      if (this.signal.aborted) throw err
      if ((err as Error)?.name === 'BlockVerificationError') this.verificationFailures++
      this.log('fetching %s from %p failed - %s', cid, peer, msg(err))
      if (host != null && (err as Error)?.name === 'BlockVerificationError') return this.fetchFrom(peer, cid, false)
      return undefined
    } finally {
      clearTimeout(idleTimer)
      for (const r of releases) r()
    }
  }
}

/** A fetch with no block arriving for this long is abandoned (that holder; the next one is tried). */
const FETCH_IDLE_MS = 15_000
/** Upper bound of one fetch from one holder, however steadily it moves. */
const FETCH_MAX_MS = 30 * 60_000
