import { TypedEventEmitter } from '@libp2p/interface'
import { EVENTS_TOPIC } from '../../protocols/events/index.ts'
import type { EventBus } from './bus.ts'
import type { Membership } from './types.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'

export interface MembershipInit {
  /** how often this peer says it is alive @default 1000 */
  heartbeatMs: number
  /** a peer with no connection and no heartbeat for this long is presumed dead @default 5000 */
  failureTimeoutMs: number
}

export interface MembershipEvents {
  'membership:peer-dead': CustomEvent<string>
  'membership:peer-alive': CustomEvent<string>
}

/**
 * Who is alive: a dflow peer (one that heartbeats on, or subscribes to, the events topic) is live while it is
 * connected or its last heartbeat is recent. Dead means both: connections closed and heartbeats stopped.
 */
export class GossipMembership extends TypedEventEmitter<MembershipEvents> implements Membership {
  readonly incarnation = Date.now()
  private readonly lastSeen = new Map<string, number>()
  private readonly incarnations = new Map<string, number>()
  private readonly dead = new Set<string>()
  private timer?: NodeJS.Timeout
  private load: () => number = () => 0

  constructor (private readonly self: string, private readonly libp2p: DflowLibp2p, private readonly bus: EventBus,
    private readonly init: MembershipInit) {
    super()
  }

  /** The scheduler's unfinished claims, carried in heartbeats. */
  setLoad (load: () => number): void { this.load = load }

  async start (): Promise<void> {
    this.bus.onEvent(ev => {
      if (ev.from === this.self) return
      this.lastSeen.set(ev.from, Date.now())
      if (ev.type === 'heartbeat' && ev.incarnation > (this.incarnations.get(ev.from) ?? 0)) this.incarnations.set(ev.from, ev.incarnation)
      if (this.dead.delete(ev.from)) this.safeDispatchEvent('membership:peer-alive', { detail: ev.from })
    })
    const beat = (): void => {
      void this.bus.publish({ type: 'heartbeat', from: this.self, ts: Date.now(), incarnation: this.incarnation, load: this.load() })
      this.check()
    }
    this.timer = setInterval(beat, this.init.heartbeatMs)
    this.timer.unref()
    beat()
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
  }

  private connected (peer: string): boolean {
    return this.libp2p.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open')
  }

  private known (): Set<string> {
    const peers = new Set(this.lastSeen.keys())
    for (const p of this.libp2p.services.pubsub.getSubscribers(EVENTS_TOPIC)) peers.add(p.toString())
    return peers
  }

  lastHeard (peer: string): number | undefined {
    return peer === this.self ? Date.now() : this.lastSeen.get(peer)
  }

  incarnationOf (peer: string): number | undefined {
    return peer === this.self ? this.incarnation : this.incarnations.get(peer)
  }

  isLive (peer: string): boolean {
    if (peer === this.self) return true
    if (this.dead.has(peer)) return false
    const seen = this.lastSeen.get(peer)
    if (seen !== undefined && Date.now() - seen < this.init.failureTimeoutMs) return true
    return this.connected(peer)
  }

  live (): string[] {
    return [this.self, ...[...this.known()].filter(p => this.isLive(p))].sort()
  }

  /** Declares peers dead once both signals are gone, so the scheduler can take over their claims. */
  private check (): void {
    const now = Date.now()
    for (const peer of this.known()) {
      if (this.dead.has(peer)) continue
      const seen = this.lastSeen.get(peer) ?? 0
      if (now - seen >= this.init.failureTimeoutMs && !this.connected(peer)) {
        this.dead.add(peer)
        this.safeDispatchEvent('membership:peer-dead', { detail: peer })
      }
    }
  }
}
