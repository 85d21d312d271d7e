import { peerIdFromString } from '@libp2p/peer-id'
import type { SyncResult } from '../../protocols/sync/index.ts'
import type { ComponentLogger, Libp2p, Logger, PeerId, TypedEventTarget } from '@libp2p/interface'

export interface AntiEntropyInit {
  /** time between two periodic exchanges while this peer has unfinished requests; 0 turns anti-entropy off @default 1000 */
  intervalMs?: number
  /** each wait is intervalMs times 1 +- jitter, so peers started together do not exchange in lockstep @default 0.2 */
  jitter?: number
  /** how often a periodic exchange goes to a peer that took part in an unfinished request @default 0.75 */
  preferParticipants?: number
}

export interface AntiEntropyComponents {
  self: string
  sync: { exchange: (peer: PeerId, signal?: AbortSignal) => Promise<SyncResult> }
  /** whether this peer has unfinished requests (RequestLogs.hasActive) */
  active: () => boolean
  /** peers presumed alive (may include self) */
  livePeers: () => string[]
  /** peers that took part in the unfinished requests here (RequestLogs.participants) */
  participants?: () => Set<string>
  /** `peer:connect`: a peer that (re)connects is synced with at once */
  libp2p?: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>
  /** `membership:peer-alive`: a peer presumed dead that speaks again is synced with at once */
  membership?: TypedEventTarget<{ 'membership:peer-alive': CustomEvent<string> }>
  logger: ComponentLogger
  /** @default Math.random */
  random?: () => number
}

/**
 * When to exchange request digests: every ~intervalMs with one live peer while this peer has unfinished
 * requests, and at once with a peer that connects or comes back. An idle peer runs no timer and starts no
 * exchange: `wake()` (called when a request becomes unfinished here) starts the timer again. It answers
 * exchanges others start whether idle or not (that is the sync protocol's handler).
 */
export class AntiEntropy {
  private readonly c: AntiEntropyComponents
  private readonly intervalMs: number
  private readonly jitter: number
  private readonly prefer: number
  private readonly random: () => number
  private readonly log: Logger
  private controller = new AbortController()
  private timer?: NodeJS.Timeout
  private running = false
  private readonly inFlight = new Set<string>()
  /** for metrics: periodic rounds, exchanges on connect / come-back, failed exchanges, events pulled */
  readonly counters = { rounds: 0, onConnect: 0, failures: 0, received: 0, sent: 0 }

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => { this.peerUp(evt.detail.toString()) }
  private readonly onAlive = (evt: CustomEvent<string>): void => { this.peerUp(evt.detail) }

  constructor (components: AntiEntropyComponents, init: AntiEntropyInit = {}) {
    this.c = components
    this.intervalMs = init.intervalMs ?? 1000
    this.jitter = Math.min(1, Math.max(0, init.jitter ?? 0.2))
    this.prefer = init.preferParticipants ?? 0.75
    this.random = components.random ?? Math.random
    this.log = components.logger.forComponent('dflow:dscheduler:anti-entropy')
  }

  start (): void {
    if (this.running || this.intervalMs <= 0) return
    this.running = true
    this.controller = new AbortController()
    this.c.libp2p?.addEventListener('peer:connect', this.onConnect)
    this.c.membership?.addEventListener('membership:peer-alive', this.onAlive)
    this.wake()
  }

  stop (): void {
    this.running = false
    clearTimeout(this.timer)
    this.timer = undefined
    this.controller.abort()
    this.c.libp2p?.removeEventListener('peer:connect', this.onConnect)
    this.c.membership?.removeEventListener('membership:peer-alive', this.onAlive)
  }

  /** Whether the periodic timer is armed (false on an idle peer). */
  get scheduled (): boolean { return this.timer !== undefined }

  /** A request may have become unfinished here: arm the timer unless it is armed already. Cheap; call freely. */
  wake (): void {
    if (!this.running || this.timer !== undefined || !this.c.active()) return
    const wait = this.intervalMs * (1 + this.jitter * (2 * this.random() - 1))
    this.timer = setTimeout(() => { void this.tick() }, Math.max(1, wait))
    this.timer.unref()
  }

  /** A peer connected or came back: exchange with it now if this peer has unfinished requests. */
  peerUp (peer: string): void {
    if (!this.running || peer === this.c.self || !this.c.active()) return
    this.counters.onConnect++
    void this.exchangeWith(peer)
  }

  /** The peer a periodic round talks to: mostly one that took part in the work, else any live peer. */
  pick (): string | undefined {
    const live = this.c.livePeers().filter(p => p !== this.c.self)
    if (live.length === 0) return undefined
    const liveSet = new Set(live)
    const parts = [...(this.c.participants?.() ?? [])].filter(p => liveSet.has(p))
    const from = parts.length > 0 && this.random() < this.prefer ? parts : live
    return from[Math.floor(this.random() * from.length) % from.length]
  }

  private async tick (): Promise<void> {
    this.timer = undefined
    if (!this.running || !this.c.active()) return
    this.counters.rounds++
    const peer = this.pick()
    if (peer !== undefined) await this.exchangeWith(peer)
    this.wake()
  }

  private async exchangeWith (peer: string): Promise<void> {
    if (this.inFlight.has(peer)) return
    this.inFlight.add(peer)
    try {
      const r = await this.c.sync.exchange(peerIdFromString(peer), this.controller.signal)
      this.counters.received += r.received
      this.counters.sent += r.sent
      if (r.received > 0 || r.sent > 0) this.log('synced with %s: %d requests differed, %d events in, %d out', peer, r.requests, r.received, r.sent)
    } catch (err) {
      this.counters.failures++
      if (this.running) this.log('sync with %s failed: %s', peer, (err as Error).message)
    } finally {
      this.inFlight.delete(peer)
    }
  }
}
