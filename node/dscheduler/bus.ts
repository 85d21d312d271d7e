import { EVENTS_TOPIC, decodeEvent, encodeEvent, type DflowEvent } from '../../protocols/events/index.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import type { Logger } from '@libp2p/interface'
import type { Message } from '@libp2p/gossipsub'
import { mulberry32, seedOf } from '../util/prng.ts'

export type EventHandler = (event: DflowEvent) => void

/** How a scheduler hears and tells: gossip between peers, or a loop back to itself for `dflow run`. */
export interface EventBus {
  /** Publish to every peer; the publisher's own handler sees the event too (asynchronously). */
  publish: (event: DflowEvent) => Promise<void>
  onEvent: (handler: EventHandler) => void
  /** events published / received since start (for the per-request message counts) */
  counters: () => { published: number, received: number, dropped: number }
  start: () => Promise<void>
  stop: () => Promise<void>
}

abstract class BaseBus implements EventBus {
  protected handlers: EventHandler[] = []
  protected published = 0
  protected received = 0
  protected dropped = 0
  abstract publish (event: DflowEvent): Promise<void>
  onEvent (handler: EventHandler): void { this.handlers.push(handler) }
  counters (): { published: number, received: number, dropped: number } {
    return { published: this.published, received: this.received, dropped: this.dropped }
  }

  protected deliver (event: DflowEvent): void {
    for (const h of this.handlers) h(event)
  }

  async start (): Promise<void> {}
  async stop (): Promise<void> { this.handlers = [] }
}

/** One embedded peer: events go round through the codec (so `dflow run` validates what gossip would). */
export class LocalBus extends BaseBus {
  async publish (event: DflowEvent): Promise<void> {
    const copy = decodeEvent(encodeEvent(event))
    this.published++
    setImmediate(() => { this.deliver(copy) })
  }
}

/** Gossipsub on EVENTS_TOPIC. Malformed or forged-looking messages are dropped and logged, never fatal. */
export class GossipBus extends BaseBus {
  private readonly libp2p: DflowLibp2p
  private readonly log: Logger
  private readonly listener = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    const signer = msg.type === 'signed' ? msg.from : undefined
    if (msg.topic !== EVENTS_TOPIC) return
    let event: DflowEvent
    try {
      event = decodeEvent(msg.data)
    } catch (err) {
      this.dropped++
      this.log('dropped malformed event from %s: %s', signer?.toString(), (err as Error).message)
      return
    }
    if (signer === undefined || signer.toString() !== event.from) {
      this.dropped++
      this.log('dropped event claiming to be from %s but signed by %s', event.from, signer?.toString())
      return
    }
    if (event.type !== 'heartbeat' && this.drop?.() === true) {
      this.droppedByFault++
      return
    }
    this.received++
    this.deliver(event)
  }

  /** fault injection: when set, says whether to drop the next readiness event received (liveness is exempt) */
  private readonly drop?: () => boolean
  private droppedByFault = 0

  constructor (libp2p: DflowLibp2p, log: Logger, opts: { dropEvents?: number, seed?: string } = {}) {
    super()
    this.libp2p = libp2p
    this.log = log
    const rate = opts.dropEvents ?? 0
    if (rate > 0) {
      const next = mulberry32(seedOf(opts.seed ?? 'dflow'))
      this.drop = () => next() < rate
    }
  }

  override counters (): { published: number, received: number, dropped: number, droppedByFault: number } {
    return { ...super.counters(), droppedByFault: this.droppedByFault }
  }

  async start (): Promise<void> {
    this.libp2p.services.pubsub.subscribe(EVENTS_TOPIC)
    this.libp2p.services.pubsub.addEventListener('message', this.listener)
  }

  async stop (): Promise<void> {
    this.libp2p.services.pubsub.removeEventListener('message', this.listener)
    await super.stop()
  }

  async publish (event: DflowEvent): Promise<void> {
    const data = encodeEvent(event)
    this.published++
    setImmediate(() => { this.deliver(event) })
    try {
      await this.libp2p.services.pubsub.publish(EVENTS_TOPIC, data)
    } catch (err) {
      // gossip re-delivers through IHAVE/IWANT and peers can pull request state, so a failed publish is logged, not fatal
      this.log.error('publish %s failed: %s', event.type, (err as Error).message)
    }
  }
}

