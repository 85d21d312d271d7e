import { signEventProof, SyncProtocol, type SyncEntry } from '../../protocols/sync/index.ts'
import { AntiEntropy } from './anti-entropy.ts'
import { RequestLogs } from './event-log.ts'
import type { RequestEvent } from '../../protocols/events/index.ts'
import type { ComponentLogger, Libp2p, PrivateKey, TypedEventTarget } from '@libp2p/interface'

export interface RequestSyncComponents {
  self: string
  libp2p: Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol' | 'addEventListener' | 'removeEventListener'>
  /** signs this peer's own events so other peers can relay them; without it they reach others by gossip or from this peer only */
  privateKey?: PrivateKey
  /** peers presumed alive (Membership.live) */
  livePeers: () => string[]
  /** `membership:peer-alive` comes from here (GossipMembership) */
  membership?: TypedEventTarget<{ 'membership:peer-alive': CustomEvent<string> }>
  logger: ComponentLogger
  /**
   * An event a sync brought that this peer does not hold. The scheduler checks it as it checks gossip and
   * takes it like any event (its onEvent calls `logs.add(event, entry.bytes, entry.proof)`); answers whether it was taken.
   */
  ingest: (entry: SyncEntry, event: RequestEvent, from: string) => boolean
}

export interface RequestSyncInit {
  /** anti-entropy period while requests are unfinished; 0 = off (the protocol is still served) @default 1000 */
  intervalMs?: number
  /** done logs unchanged this long are dropped by `logs.sweep()` @default 3_600_000 */
  retentionMs?: number
}

/**
 * The anti-entropy parts of a peer, wired together: the per-request event logs, `/dflow/sync/1.0.0`
 * served from them, and the timer and connect hooks that start exchanges. The scheduler feeds `logs`.
 */
export class RequestSync {
  readonly logs: RequestLogs
  readonly protocol: SyncProtocol
  readonly antiEntropy: AntiEntropy
  private sweeper?: NodeJS.Timeout
  private running = false
  private readonly sweepMs: number

  constructor (c: RequestSyncComponents, init: RequestSyncInit = {}) {
    let ae: AntiEntropy | undefined
    const key = c.privateKey
    this.logs = new RequestLogs({
      ingest: c.ingest,
      retentionMs: init.retentionMs,
      onActive: () => { ae?.wake() },
      onNewLog: () => { this.armSweep() },
      self: c.self,
      sign: key === undefined ? undefined : async bytes => signEventProof(key, c.libp2p.peerId, bytes)
    })
    this.protocol = new SyncProtocol(c.libp2p, this.logs, c.logger.forComponent('dflow:sync'))
    ae = this.antiEntropy = new AntiEntropy({
      self: c.self,
      sync: this.protocol,
      active: () => this.logs.hasActive(),
      participants: () => this.logs.participants(),
      livePeers: c.livePeers,
      libp2p: c.libp2p,
      membership: c.membership,
      logger: c.logger
    }, { intervalMs: init.intervalMs })
    this.sweepMs = Math.max(100, Math.min(60_000, init.retentionMs ?? 60_000))
  }

  /** Old logs go by a local timer that runs only while logs are held: an idle peer with none runs nothing. */
  private armSweep (): void {
    if (!this.running || this.sweeper !== undefined) return
    this.sweeper = setTimeout(() => {
      this.sweeper = undefined
      this.logs.sweep()
      if (this.logs.size > 0) this.armSweep()
    }, this.sweepMs)
    this.sweeper.unref()
  }

  async start (): Promise<void> {
    this.running = true
    await this.protocol.start()
    this.antiEntropy.start()
    if (this.logs.size > 0) this.armSweep()
  }

  async stop (): Promise<void> {
    this.running = false
    clearTimeout(this.sweeper)
    this.sweeper = undefined
    this.antiEntropy.stop()
    await this.protocol.stop()
  }

  /** For /v1/metrics/scheduler: exchanges, events moved, what the logs hold. */
  metrics (): Record<string, unknown> {
    return { ...this.protocol.counters, rounds: this.antiEntropy.counters.rounds, onConnect: this.antiEntropy.counters.onConnect, logs: this.logs.usage() }
  }
}
