import { fetchBlocks, handleFetch, FETCH_PROTOCOL } from '../../protocols/fetch/index.ts'
import { handlePush, pushBlocks, PUSH_PROTOCOL, type PushDecision, type PushOutcome } from '../../protocols/push/index.ts'
import { blockKey } from './blocks.ts'
import { ValueNotFoundError } from './errors.ts'
import { closestPeers } from './placement.ts'
import type { DStoreConfig } from './dstore.ts'
import type { LocalStore } from './local.ts'
import type { ValueMeta } from './types.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import type { Logger, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface NetworkHooks {
  acceptPush?: (meta: ValueMeta, from: PeerId) => boolean
  livePeers?: () => PeerId[]
  /** a pushed value was verified and stored; `replica` when this peer was chosen to hold it */
  landed: (cid: CID, meta: ValueMeta, from: PeerId, replica: boolean, keys: string[]) => void
  /** whether this peer is fetching `cid` right now */
  isFetching?: (cid: CID) => boolean
}

export const NO_META: ValueMeta = { request: '', step: '', output: '', index: null }

function msg (err: unknown): string { return err instanceof Error ? `${err.name}: ${err.message}` : String(err) }

/** DStore's use of the network: the two protocols, DHT provide / find, replication. */
export class StoreNetwork {
  transfers = 0
  served = 0
  pushesReceived = 0
  /** holders whose blocks did not hash to their CIDs */
  verificationFailures = 0
  private readonly libp2p: DflowLibp2p
  private readonly local: LocalStore
  private readonly cfg: DStoreConfig
  private readonly log: Logger
  private readonly signal: AbortSignal
  private readonly hooks: NetworkHooks

  constructor (libp2p: DflowLibp2p, local: LocalStore, cfg: DStoreConfig, log: Logger, signal: AbortSignal, hooks: NetworkHooks) {
    this.libp2p = libp2p
    this.local = local
    this.cfg = cfg
    this.log = log
    this.signal = signal
    this.hooks = hooks
  }

  private get init (): { maxMessageBytes: number, timeoutMs: number, window: number } {
    return { maxMessageBytes: this.cfg.maxMessageBytes, timeoutMs: this.cfg.fetchTimeoutMs, window: this.cfg.window }
  }

  async start (): Promise<void> {
    await this.libp2p.handle(FETCH_PROTOCOL, (stream) => {
      void handleFetch(stream, this.local, this.init, this.signal, this.log, () => { this.served++ })
    }, { maxInboundStreams: 64, maxOutboundStreams: 64 })
    await this.libp2p.handle(PUSH_PROTOCOL, (stream, connection) => { void this.receivePush(stream, connection.remotePeer) },
      { maxInboundStreams: 64, maxOutboundStreams: 64 })
  }

  async stop (): Promise<void> {
    await this.libp2p.unhandle(FETCH_PROTOCOL)
    await this.libp2p.unhandle(PUSH_PROTOCOL)
  }

  peers (): PeerId[] {
    return this.hooks.livePeers?.() ?? this.libp2p.getPeers()
  }

  /** The `replicas` peers chosen to hold `cid` besides `exclude` (the producer / sender) and this peer. */
  replicasFor (cid: CID, exclude: PeerId[] = []): PeerId[] {
    const self = this.libp2p.peerId
    const skip = new Set([self, ...exclude].map(p => p.toString()))
    return closestPeers(cid, this.peers().filter(p => !skip.has(p.toString())), this.cfg.replicas)
  }

  private isReplica (cid: CID, from: PeerId): boolean {
    const self = this.libp2p.peerId
    const candidates = [self, ...this.peers().filter(p => !p.equals(from))]
    return closestPeers(cid, candidates, this.cfg.replicas).some(p => p.equals(self))
  }

  async provide (cid: CID): Promise<void> {
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.cfg.dhtTimeoutMs)])
    try {
      await this.libp2p.contentRouting.provide(cid, { signal })
    } catch (err) {
      this.log('provide %s failed - %s', cid, msg(err))
    }
  }

  /** Background work after a local put: announce and replicate. Never throws. */
  async announce (cid: CID, meta: ValueMeta | undefined): Promise<void> {
    await Promise.allSettled([
      this.provide(cid),
      ...this.replicasFor(cid).map(async peer => this.push(peer, cid, meta ?? NO_META).catch(err => {
        this.log('replicating %s to %p failed - %s', cid, peer, msg(err))
      }))
    ])
  }

  /** Sends a held value to `peer`. Resolves with the receiver's answer; rejects on transport/verification failure. */
  async push (peer: PeerId, cid: CID, meta: ValueMeta, callerSignal?: AbortSignal): Promise<PushOutcome> {
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.cfg.fetchTimeoutMs), ...(callerSignal != null ? [callerSignal] : [])])
    const root = await this.local.getBlock(cid, { signal })
    if (root == null) throw new ValueNotFoundError(`cannot push ${cid}: not held`)
    const stream = await this.libp2p.dialProtocol(peer, PUSH_PROTOCOL, { signal })
    const outcome = await pushBlocks(stream, cid, meta, this.local, root, this.init, signal)
    this.log('pushed %s to %p: %s', cid, peer, outcome)
    return outcome
  }

  /** Pushes being received, by CID: a get of that CID waits for one instead of fetching it again. */
  readonly receiving = new Map<string, Promise<void>>()

  private async receivePush (stream: Parameters<typeof handlePush>[0], from: PeerId): Promise<void> {
    const releases: Array<() => void> = []
    const keys: string[] = []
    let replica = false
    let receiving: { key: string, done: () => void } | undefined
    try {
      await handlePush(stream, from, {
        decide: async (cid, meta, sender): Promise<PushDecision> => {
          // a value already held, already arriving by another push or being fetched needs no second transfer
          if (this.local.hasValue(cid) || this.receiving.has(cid.toString()) || this.hooks.isFetching?.(cid) === true) return 'have'
          replica = this.isReplica(cid, sender)
          if (replica || this.hooks.acceptPush?.(meta, sender) === true) {
            const { promise, resolve } = Promise.withResolvers<void>()
            receiving = { key: cid.toString(), done: resolve }
            this.receiving.set(receiving.key, promise)
            return 'accept'
          }
          return 'reject'
        },
        putBlock: async (cid, bytes, options) => {
          const key = blockKey(cid)
          keys.push(key)
          releases.push(this.local.pins.hold([key]))
          await this.local.putBlock(cid, bytes, options)
        },
        landed: async (cid, meta, sender) => {
          this.pushesReceived++
          // the root arrives last; pins list it first
          this.hooks.landed(cid, meta, sender, replica, [keys[keys.length - 1], ...keys.slice(0, -1)])
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
   * then DHT providers. A holder that fails or serves a wrong block is skipped.
   */
  async fetchValue (cid: CID, holders: PeerId[]): Promise<void> {
    this.transfers++
    const self = this.libp2p.peerId.toString()
    const tried = new Set<string>([self])
    const attempt = async (peer: PeerId): Promise<boolean> => {
      if (tried.has(peer.toString())) return false
      tried.add(peer.toString())
      return this.fetchFrom(peer, cid)
    }
    for (const peer of [...holders, ...this.replicasFor(cid)]) {
      if (await attempt(peer)) return
    }
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.cfg.dhtTimeoutMs)])
    try {
      for await (const provider of this.libp2p.contentRouting.findProviders(cid, { signal })) {
        if (tried.has(provider.id.toString())) continue
        if (provider.multiaddrs.length > 0) await this.libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs }).catch(() => {})
        if (await attempt(provider.id)) return
      }
    } catch (err) {
      this.log('finding providers of %s failed - %s', cid, msg(err))
    }
    this.signal.throwIfAborted()
    throw new ValueNotFoundError(`no holder could deliver ${cid} (tried ${tried.size - 1} peers)`)
  }

  private async fetchFrom (peer: PeerId, cid: CID): Promise<boolean> {
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.cfg.fetchTimeoutMs)])
    const releases: Array<() => void> = []
    const t0 = Date.now()
    try {
      const stream = await this.libp2p.dialProtocol(peer, FETCH_PROTOCOL, { signal })
      const t1 = Date.now()
      await fetchBlocks(stream, cid, {
        putBlock: async (c, bytes, options) => {
          releases.push(this.local.pins.hold([blockKey(c)]))
          await this.local.putBlock(c, bytes, options)
        }
      }, this.init, signal)
      this.log('fetched %s from %p: dial %d ms, transfer %d ms', cid, peer, t1 - t0, Date.now() - t1)
      return true
    } catch (err) {
      if (this.signal.aborted) throw err
      if ((err as Error)?.name === 'BlockVerificationError') this.verificationFailures++
      this.log('fetching %s from %p failed - %s', cid, peer, msg(err))
      return false
    } finally {
      for (const r of releases) r()
    }
  }
}
