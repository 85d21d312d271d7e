import { encodeEvent, type DflowEvent, type RequestEvent } from '../../protocols/events/index.ts'
import type { EventBus, EventHandler, EventOrigin } from './bus.ts'
import type { RequestLogs } from './event-log.ts'

/**
 * The scheduler's view of the bus: every request event, whichever way it came (gossip, its own publish, a
 * submitter's hand-over, a sync exchange), is added to the request event logs and passed on only when it is
 * new there, so the scheduler applies each event once. Heartbeats pass straight through, never logged.
 * Membership listens to the inner bus, not to this one: an old event relayed by sync says nothing about
 * whether its publisher is alive now.
 */
export class LoggedBus implements EventBus {
  private handlers: EventHandler[] = []
  /** request events taken from sync exchanges and hand-overs, and duplicates suppressed */
  private synced = 0
  private duplicates = 0

  constructor (private readonly inner: EventBus, private readonly logs: RequestLogs) {
    inner.onEvent((ev, origin) => {
      if (ev.type === 'heartbeat') { this.deliver(ev, origin); return }
      if (this.logs.add(ev, origin?.bytes, origin?.proof)) this.deliver(ev, origin)
      else this.duplicates++
    })
  }

  private deliver (event: DflowEvent, origin?: EventOrigin): void {
    for (const h of this.handlers) h(event, origin)
  }

  /** An event from a sync exchange (checked by the protocol) or a hand-over: answers whether it was new. */
  ingest (event: RequestEvent, origin: EventOrigin = { bytes: encodeEvent(event) }): boolean {
    if (!this.logs.add(event, origin.bytes, origin.proof)) { this.duplicates++; return false }
    this.synced++
    this.deliver(event, origin)
    return true
  }

  async publish (event: DflowEvent): Promise<void> { await this.inner.publish(event) }
  onEvent (handler: EventHandler): void { this.handlers.push(handler) }
  counters (): { published: number, received: number, dropped: number, synced: number, duplicates: number } {
    return { ...this.inner.counters(), synced: this.synced, duplicates: this.duplicates }
  }

  /** The inner bus is started and stopped by its owner (it also serves membership). */
  async start (): Promise<void> {}
  async stop (): Promise<void> { this.handlers = [] }
}
