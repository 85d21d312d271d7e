import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { EVENTS_TOPIC, batchDigests, decodeEvent, decodeEventMessage, encodeEvent, encodeEventBatch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, type BatchProof, type DflowEvent, type MessageEvent, type RequestStarted } from '../../protocols/events/index.ts'
import { authorizeCancel, authorizeRequest, NotAuthorizedError, type AuthorizePolicy } from './authorize.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import type { Logger, PeerId, PrivateKey } from '@libp2p/interface'
import { proofFromGossip, signBatchProof, type EventProof } from '../../protocols/sync/index.ts'
import { ForwardFilter } from '../network/gossip-forward.ts'
import { mulberry32, seedOf } from '../util/prng.ts'

/**
 * How an event arrived: its bytes as published (canonical: every peer encodes with encodeEvent) and, from
 * gossip, the origin's signature, which the request event log keeps so the event can be relayed by sync.
 */
export interface EventOrigin { bytes: Uint8Array, proof?: EventProof }

export type EventHandler = (event: DflowEvent, origin?: EventOrigin) => void

/** How a scheduler hears and tells: gossip between peers, or a loop back to itself for `dflow run`. */
export interface EventBus {
  /** Publish to every peer; the publisher's own handler sees the event too (asynchronously). */
  publish: (event: DflowEvent) => Promise<void>
  onEvent: (handler: EventHandler) => void
  /** events published / received since start (for the per-request message counts); `messages`: gossip messages published */
  counters: () => { published: number, received: number, dropped: number, messages?: number }
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

  protected deliver (event: DflowEvent, origin?: EventOrigin): void {
    for (const h of this.handlers) h(event, origin)
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

/**
 * How long (ms) an own event may wait before it is sent, so that it shares one gossip message with later ones:
 * 0 when someone may be waiting on it. The scheduler answers it (DScheduler.sendSlack) after it applied the event.
 * `memo` is shared by the calls of one check (nothing changes between them), for what they have in common.
 */
export type SendSlack = (event: DflowEvent, memo: Map<object, number>) => number

/** an own event waits at most this long for others to share its message, whatever its slack */
export const MAX_SEND_DELAY_MS = 50

/**
 * Who started each request, so a cancel can be checked against it: forgotten with the request's state
 * (forget()), and bounded, oldest forgotten first, for starts the scheduler never tracks. Before forget() the
 * bound was the only release, and every request left its starter's public key and signature here (about
 * 0.6 KiB) until 20 000 more had come: 1000 requests kept 1000 entries on every peer.
 */
const MAX_KNOWN_STARTS = 20_000

/**
 * Gossipsub on EVENTS_TOPIC. Every message is checked in gossipsub's topic validator, before it is delivered
 * or forwarded: malformed events, a `from` that is not the gossip signer, inline values that do not hash to
 * their CID, forged signatures and cancels from whoever may not cancel are rejected (not forwarded, and
 * gossipsub scores their sender down); requests or cancels this peer's policy does not authorize are
 * ignored (not forwarded, no penalty: the relaying peer may have another list).
 */
export class GossipBus extends BaseBus {
  private readonly libp2p: DflowLibp2p
  private readonly log: Logger
  private readonly policy: AuthorizePolicy
  private readonly starts = new Map<string, Pick<RequestStarted, 'auth' | 'from'>>()
  /** the events each validated message decoded to (those this peer's policy ignores left out), so the listener does not decode again */
  private readonly validated = new WeakMap<Message, MessageEvent[]>()
  /** own events not yet handed to this peer's handlers, and not yet sent (one gossip message per window) */
  private readonly local: Array<{ event: DflowEvent, bytes: Uint8Array }> = []
  private outbox: Array<{ event: DflowEvent, bytes: Uint8Array, done: () => void, deadline?: number }> = []
  /** a send check is queued (after this peer's own handlers ran) */
  private checkQueued = false
  /** events wait for this timer (at flushAt) when none of them is wanted at once */
  private flushTimer?: NodeJS.Timeout
  private flushAt = Infinity
  /**
   * How long an own event may wait to share a message with later ones (unset: every event goes with the
   * others of its tick). Events leave in publish order; one with no slack takes every waiting one along.
   */
  slack?: SendSlack
  private readonly maxSendDelayMs: number
  /** relays leave out the recipients a publisher names (node/network/gossip-forward.ts) */
  private forward?: ForwardFilter
  private stopped = false
  private messages = 0
  /** times the outbox waited for later events instead of being sent with its tick */
  private waits = 0
  private readonly privateKey?: PrivateKey
  /** validation outcomes since start, for /v1/metrics/scheduler */
  readonly validation = { accepted: 0, rejected: 0, ignored: 0 }

  private readonly validator = (_from: PeerId, msg: Message): TopicValidatorResult => {
    let result: TopicValidatorResult
    try {
      result = this.check(msg)
    } catch (err) {
      // a bug here must not take the peer down or penalize an honest sender
      this.log.error('event validation failed: %e', err)
      result = TopicValidatorResult.Ignore
    }
    if (result === TopicValidatorResult.Accept) this.validation.accepted++
    else if (result === TopicValidatorResult.Reject) { this.validation.rejected++; this.dropped++ } else { this.validation.ignored++; this.dropped++ }
    return result
  }

  private readonly listener = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== EVENTS_TOPIC) return
    // gossipsub delivers only what the validator accepted; check again if it was another Message object
    const events = this.validated.get(msg) ?? this.acceptedEvents(msg)
    if (events === undefined) return
    for (const { event, bytes, proof } of events) {
      if (event.type !== 'heartbeat' && this.drop?.() === true) {
        this.droppedByFault++
        continue
      }
      this.received++
      // what this peer hears may make its waiting events wanted (a consumer elsewhere now lacks only them)
      if (this.flushTimer !== undefined) this.queueCheck()
      // one event alone: the gossip signature is its proof; in a batch, the entry carries its own
      this.deliver(event, { bytes, proof: proof ?? (msg.type === 'signed' && events.length === 1 ? proofFromGossip(msg) : undefined) })
    }
  }

  /** fault injection: when set, says whether to drop the next readiness event received (liveness is exempt) */
  private readonly drop?: () => boolean
  private droppedByFault = 0

  /**
   * policy: who may submit and cancel (default: nobody listed, every peer is of the network). privateKey: this
   * peer's, to sign each event of a batch on its own (protocols/events/batch.ts); without it every event goes in
   * its own message. maxSendDelayMs: the most an event waits for others under its slack (MAX_SEND_DELAY_MS).
   */
  constructor (libp2p: DflowLibp2p, log: Logger, opts: { dropEvents?: number, seed?: string, policy?: AuthorizePolicy, privateKey?: PrivateKey, maxSendDelayMs?: number } = {}) {
    super()
    this.maxSendDelayMs = opts.maxSendDelayMs ?? MAX_SEND_DELAY_MS
    this.libp2p = libp2p
    this.privateKey = opts.privateKey
    this.log = log
    this.policy = opts.policy ?? { authorized: new Set(), isNetworkPeer: () => true }
    const rate = opts.dropEvents ?? 0
    if (rate > 0) {
      const next = mulberry32(seedOf(opts.seed ?? 'dflow'))
      this.drop = () => next() < rate
    }
  }

  /** Remember a request-started that came another way (hand-over over the submit protocol, or our own). */
  remember (started: RequestStarted): void {
    if (this.starts.has(started.request)) return
    this.starts.set(started.request, { auth: started.auth, from: started.from })
    if (this.starts.size > MAX_KNOWN_STARTS) this.starts.delete(this.starts.keys().next().value as string)
  }

  /** The request's state is gone (the scheduler forgot it after its retention): a later cancel has nothing to cancel. */
  forget (request: string): void {
    this.starts.delete(request)
  }

  /** requests whose starter this bus remembers (tests, diagnostics) */
  knownStarts (): number { return this.starts.size }

  /**
   * The events of a message, if none is malformed or claims another `from` than the gossip signer (undefined:
   * reject the whole message), without those this peer's policy ignores.
   */
  private decodeChecked (msg: Message): { events: MessageEvent[], result: TopicValidatorResult } {
    const signer = msg.type === 'signed' ? msg.from.toString() : undefined
    let events: MessageEvent[]
    let to: Uint8Array | undefined
    try {
      ({ events, to } = decodeEventMessage(msg.data))
    } catch (err) {
      this.log('rejected malformed event message from %s: %s', signer, (err as Error).message)
      return { events: [], result: TopicValidatorResult.Reject }
    }
    const accepted: MessageEvent[] = []
    for (const e of events) {
      if (signer === undefined || signer !== e.event.from) {
        this.log('rejected event claiming to be from %s but signed by %s', e.event.from, signer)
        return { events: [], result: TopicValidatorResult.Reject }
      }
      const r = this.authorize(e.event)
      if (r === TopicValidatorResult.Reject) return { events: [], result: r }
      if (r === TopicValidatorResult.Accept) accepted.push(e)
    }
    // a batch with something for us is taken (and forwarded: others may take what this policy ignores)
    const result = accepted.length > 0 ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
    if (result === TopicValidatorResult.Accept && to !== undefined && msg.type === 'signed') this.forward?.remember(msg.signature, to)
    return { events: accepted, result }
  }

  private acceptedEvents (msg: Message): MessageEvent[] | undefined {
    const { events, result } = this.decodeChecked(msg)
    return result === TopicValidatorResult.Accept ? events : undefined
  }

  private check (msg: Message): TopicValidatorResult {
    const { events, result } = this.decodeChecked(msg)
    if (result === TopicValidatorResult.Accept) this.validated.set(msg, events)
    return result
  }

  /**
   * Who may say it: a request start from an authorized submitter (or a peer of the network), a cancel from the
   * request's submitter or an authorized identity. Also for events that came another way than gossip (sync).
   */
  authorize (event: DflowEvent): TopicValidatorResult {
    try {
      if (event.type === 'request-started') {
        // the gossip signer (checked to be `from`) reached us through the network, so it is one of its peers
        authorizeRequest(event, { authorized: this.policy.authorized, isNetworkPeer: id => id === event.from || this.policy.isNetworkPeer(id) })
        this.remember(event)
      } else if (event.type === 'request-cancelled') {
        const started = this.starts.get(event.request)
        // a cancel of a request this peer never saw start cannot be checked: drop it quietly
        if (started === undefined) return TopicValidatorResult.Ignore
        authorizeCancel(event, started, this.policy)
      }
    } catch (err) {
      if (!(err instanceof NotAuthorizedError)) throw err
      this.log('%s %s', err.kind === 'forged' ? 'rejected' : 'ignored', err.message)
      return err.kind === 'forged' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
    }
    return TopicValidatorResult.Accept
  }

  async start (): Promise<void> {
    if (this.privateKey !== undefined) {
      this.forward = new ForwardFilter(this.libp2p.services.pubsub as unknown as ConstructorParameters<typeof ForwardFilter>[0], EVENTS_TOPIC)
      this.forward.start()
    }
    this.libp2p.services.pubsub.topicValidators.set(EVENTS_TOPIC, this.validator)
    this.libp2p.services.pubsub.subscribe(EVENTS_TOPIC)
    this.libp2p.services.pubsub.addEventListener('message', this.listener)
  }

  async stop (): Promise<void> {
    // events waiting to share a message go now (a peer that stops says what it did)
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    if (this.outbox.length > 0 && !this.stopped) await this.flush().catch(() => {})
    this.stopped = true
    this.forward?.stop()
    this.libp2p.services.pubsub.removeEventListener('message', this.listener)
    this.libp2p.services.pubsub.topicValidators.delete(EVENTS_TOPIC)
    await super.stop()
  }

  override counters (): { published: number, received: number, dropped: number, droppedByFault: number, messages: number, forwardsSkipped: number, waits: number } {
    return { ...super.counters(), droppedByFault: this.droppedByFault, messages: this.messages, forwardsSkipped: this.forward?.skipped ?? 0, waits: this.waits }
  }

  /**
   * This peer sees its own event first, then the network: signing, encrypting and writing a message to every
   * mesh peer takes a millisecond or more on a small machine, and a consumer placed here (a chain kept on one
   * peer) should not wait for it. What is published in one tick goes out as one message (a batch): steps that
   * end together, a step's outputs and its step-done, a wave of claims. (A longer window paid nothing back in A/B
   * runs of the fan, where busy ticks batch by themselves, and would delay every hand-off to another peer.) Both
   * steps keep publish order.
   */
  async publish (event: DflowEvent): Promise<void> {
    const bytes = encodeEvent(event)
    if (event.type === 'request-started') this.remember(event)
    this.published++
    const { promise, resolve } = Promise.withResolvers<void>()
    this.local.push({ event, bytes })
    if (this.local.length === 1) setImmediate(() => { this.deliverLocal() })
    this.outbox.push({ event, bytes, done: resolve })
    this.queueCheck()
    await promise
  }

  /** One immediate after this peer's own handlers (and the scheduler pass they queue) ran: send, or wait. */
  private queueCheck (): void {
    if (this.checkQueued) return
    this.checkQueued = true
    setImmediate(() => { setImmediate(() => { this.checkQueued = false; this.sendOrWait() }) })
  }

  /**
   * Sends what is in the outbox, unless every event in it may wait (its slack, asked again at every check, as
   * what this peer knows changes): then a timer sends them all at the earliest deadline among them. A waiting
   * event's publish() resolves at once: it is applied here and will go out, in order.
   */
  private sendOrWait (): void {
    if (this.outbox.length === 0) return
    const now = Date.now()
    let due = now
    if (this.slack !== undefined && !this.stopped) {
      due = Infinity
      const memo = new Map<object, number>()
      for (const p of this.outbox) {
        let ms = 0
        try { ms = this.slack(p.event, memo) } catch (err) { this.log.error('send slack failed: %s', (err as Error).message) }
        const deadline = now + (Number.isNaN(ms) ? 0 : Math.min(Math.max(0, ms), this.maxSendDelayMs))
        p.deadline = Math.min(p.deadline ?? Infinity, deadline)
        due = Math.min(due, p.deadline)
        if (due <= now) break
      }
    }
    if (due <= now) {
      clearTimeout(this.flushTimer)
      this.flushTimer = undefined
      this.flushAt = Infinity
      void this.flush()
      return
    }
    for (const p of this.outbox) p.done()
    if (this.flushTimer === undefined) this.waits++
    if (this.flushTimer !== undefined && this.flushAt <= due) return
    clearTimeout(this.flushTimer)
    this.flushAt = due
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.flushAt = Infinity
      void this.flush()
    }, due - now)
  }

  private deliverLocal (): void {
    for (const { event, bytes } of this.local.splice(0)) this.deliver(event, { bytes })
  }

  private async flush (): Promise<void> {
    const all = this.outbox
    this.outbox = []
    if (this.stopped) { for (const p of all) p.done(); return }
    // a message that names its recipients is a batch (of one, if need be); a batch carries one origin proof for
    // all its events, for sync to relay them one by one
    const to = this.forward?.recipients()
    const batched = (all.length > 1 || to !== undefined) && this.privateKey !== undefined
    let at = 0
    while (at < all.length) {
      let end = at + 1
      let size = all[at].bytes.byteLength
      // an event too large to share a message goes alone, as it is (an envelope could push it past MAX_EVENT_BYTES)
      const alone = !batched || size > MAX_BATCH_BYTES
      if (!alone) {
        while (end < all.length && end - at < MAX_BATCH_EVENTS && size + all[end].bytes.byteLength <= MAX_BATCH_BYTES) size += all[end++].bytes.byteLength
      }
      const events = all.slice(at, end).map(p => p.bytes)
      const proof = alone ? undefined : await this.batchProof(events)
      // without a proof (alone, or signing failed) the event goes as it is, by itself
      if (proof === undefined) end = at + 1
      const data = proof === undefined ? all[at].bytes : encodeEventBatch(events, proof, to)
      const label = proof === undefined ? all[at].event.type : `batch of ${end - at}`
      this.messages++
      try {
        await this.libp2p.services.pubsub.publish(EVENTS_TOPIC, data)
      } catch (err) {
        // gossip re-delivers through IHAVE/IWANT and peers can pull request state, so a failed publish is logged, not fatal
        this.log.error('publish %s failed: %s', label, (err as Error).message)
      }
      for (let i = at; i < end; i++) all[i].done()
      at = end
    }
  }

  private async batchProof (events: Uint8Array[]): Promise<BatchProof | undefined> {
    try {
      return await signBatchProof(this.privateKey!, batchDigests(events))
    } catch (err) {
      this.log.error('signing a batch proof failed: %s', (err as Error).message)
      return undefined
    }
  }
}
