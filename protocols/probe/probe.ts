import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { MAX_ADDR_LENGTH, MAX_INDIRECT_TIMEOUT_MS, MAX_MEMBER_ADDRS, MAX_SUSPICION_AGE_MS, MAX_PROBE_MESSAGE_BYTES, MAX_UPDATES, PROBE_DIAL_TIMEOUT_MS, PROBE_PROTOCOL } from './constants.ts'
import type { MemberUpdate, ProbeAnswer, ProbeMessage, ProbeTarget } from './index.ts'
import { ProbeChannel } from './channel.ts'
import type { Connection, Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

export class ProbeMessageError extends Error {
  static readonly NAME = 'ProbeMessageError'
  constructor (message: string) {
    super(message)
    this.name = ProbeMessageError.NAME
  }
}

// base58btc (Qm…/12D3…) or base32 CIDv1 peer ids; checked again by peerIdFromString where one is dialled
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{32,128}$|^b[a-z2-7]{32,128}$/
const STATES = new Set(['alive', 'suspect', 'dead'])

function nat (v: unknown): boolean { return Number.isSafeInteger(v) && (v as number) >= 0 }

function checkUpdates (up: unknown): string | undefined {
  if (!Array.isArray(up)) return 'up must be a list'
  if (up.length > MAX_UPDATES) return `more than ${MAX_UPDATES} updates`
  for (const u of up as unknown[]) {
    if (u === null || typeof u !== 'object') return 'update is not a map'
    const m = u as Record<string, unknown>
    if (typeof m.peer !== 'string' || !PEER_ID.test(m.peer)) return 'update.peer is not a peer id'
    if (!nat(m.inc) || !nat(m.ver)) return 'update.inc and update.ver must be non-negative integers'
    if (typeof m.state !== 'string' || !STATES.has(m.state)) return `update.state ${JSON.stringify(m.state)} unknown`
    if (m.addrs !== undefined) {
      if (!Array.isArray(m.addrs) || m.addrs.length > MAX_MEMBER_ADDRS) return `update.addrs must be a list of at most ${MAX_MEMBER_ADDRS}`
      if (!m.addrs.every(a => typeof a === 'string' && a.startsWith('/') && a.length <= MAX_ADDR_LENGTH)) return `update.addrs must be multiaddrs of at most ${MAX_ADDR_LENGTH} characters`
    }
    if (m.age !== undefined && (!nat(m.age) || (m.age as number) > MAX_SUSPICION_AGE_MS)) return `update.age must be 0-${MAX_SUSPICION_AGE_MS}`
  }
  return undefined
}

/** Why a decoded probe message is malformed, or undefined when it is fine. */
export function checkProbeMessage (msg: unknown): string | undefined {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return 'message is not a map'
  const m = msg as Record<string, unknown>
  if (!nat(m.seq)) return 'seq must be a non-negative integer'
  if (m.t === 'ping') {
    if (m.quiet !== undefined && typeof m.quiet !== 'boolean') return 'ping.quiet must be a boolean'
    return nat(m.inc) && nat(m.ver) ? checkUpdates(m.up) : 'ping needs inc and ver'
  }
  if (m.t === 'req') {
    if (typeof m.target !== 'string' || !PEER_ID.test(m.target)) return 'req.target is not a peer id'
    if (!nat(m.timeoutMs) || (m.timeoutMs as number) < 1 || (m.timeoutMs as number) > MAX_INDIRECT_TIMEOUT_MS) return `req.timeoutMs must be 1-${MAX_INDIRECT_TIMEOUT_MS}`
    return checkUpdates(m.up)
  }
  return `unknown message type ${JSON.stringify(m.t)}`
}

export function checkProbeAnswer (ans: unknown): string | undefined {
  if (ans === null || typeof ans !== 'object' || Array.isArray(ans)) return 'answer is not a map'
  const m = ans as Record<string, unknown>
  if (!nat(m.seq)) return 'seq must be a non-negative integer'
  if (typeof m.of !== 'string' || !PEER_ID.test(m.of)) return 'answer.of is not a peer id'
  if (m.t === 'ack') return nat(m.inc) && nat(m.ver) ? checkUpdates(m.up) : 'ack needs inc and ver'
  if (m.t === 'nack') return checkUpdates(m.up)
  return `unknown answer type ${JSON.stringify(m.t)}`
}

type ProbeLibp2p = Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol' | 'getConnections'>

/** Answers served at once on one inbound stream; more are dropped (the prober times out). */
const MAX_IN_FLIGHT = 16

/** Serves probes to other peers and sends them; the membership decides whom and what the answers mean. */
export class ProbeProtocol {
  private readonly controller = new AbortController()
  private readonly self: string
  private readonly channels = new Map<string, Promise<ProbeChannel>>()
  /** the channels of `channels` that are open, for the synchronous fast path */
  private readonly open = new Map<string, ProbeChannel>()
  private readonly inbound = new Set<Stream>()
  private seq = 0

  constructor (private readonly libp2p: ProbeLibp2p, private readonly target: ProbeTarget, private readonly log: Logger) {
    this.self = libp2p.peerId.toString()
  }

  async start (): Promise<void> {
    await this.libp2p.handle(PROBE_PROTOCOL, (stream: Stream, connection: Connection) => { void this.serve(stream, connection.remotePeer) }, { maxInboundStreams: 8, maxOutboundStreams: 8 })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    for (const ch of this.channels.values()) void ch.then(c => { c.close() }, () => {})
    this.channels.clear()
    this.open.clear()
    for (const s of this.inbound) s.abort(new Error('probe protocol stopped'))
    this.inbound.clear()
    await this.libp2p.unhandle(PROBE_PROTOCOL)
  }

  /** The open channel to `peer`, or a new one (dialling it if need be). */
  private async channel (peer: PeerId, signal: AbortSignal): Promise<ProbeChannel> {
    const id = peer.toString()
    const existing = this.channels.get(id)
    if (existing !== undefined) {
      const ch = await existing.catch(() => undefined)
      if (ch !== undefined && !ch.closed) return ch
      if (this.channels.get(id) === existing) this.channels.delete(id)
    }
    const opening = (async () => {
      const stream = await this.libp2p.dialProtocol(this.dialTarget(peer), PROBE_PROTOCOL, { signal })
      const ch: ProbeChannel = new ProbeChannel(stream, checkProbeAnswer, err => {
        if (err !== undefined) this.log('probe channel to %s closed: %s', id, err.message)
        if (this.open.get(id) === ch) this.open.delete(id)
        void this.channels.get(id)?.then(c => { if (c === ch) this.channels.delete(id) }, () => {})
      })
      if (!ch.closed && !this.controller.signal.aborted) this.open.set(id, ch)
      return ch
    })()
    this.channels.set(id, opening)
    opening.catch(() => { if (this.channels.get(id) === opening) this.channels.delete(id) })
    return opening
  }

  /** The peer's addresses from the member list when there is no connection to it (no DHT lookup), else its id. */
  private dialTarget (peer: PeerId): PeerId | Multiaddr[] {
    if (this.libp2p.getConnections(peer).length > 0) return peer
    const addrs = this.target.addrs(peer.toString())
    if (addrs === undefined || addrs.length === 0) return peer
    try {
      return addrs.map(a => multiaddr(a).encapsulate(`/p2p/${peer.toString()}`))
    } catch {
      return peer
    }
  }

  /** One exchange; undefined when it failed or timed out (the reason is logged). */
  private async exchange (peer: PeerId, msg: DistributiveOmit<ProbeMessage, 'seq'>, timeoutMs: number, signal?: AbortSignal, dialBudget = true): Promise<ProbeAnswer | undefined> {
    // the common case at rest: the channel is open, and the ask's own timer bounds the exchange (the abort
    // signals below only bound opening a channel; building them for every probe was most of a probe's own cost)
    const open = this.open.get(peer.toString())
    if (open !== undefined && !open.closed && signal?.aborted !== true && !this.controller.signal.aborted) {
      const seq = ++this.seq
      const t0 = performance.now()
      const answer = await open.ask(seq, { ...msg, seq }, timeoutMs)
      if (answer !== undefined && msg.t === 'ping') this.target.rtt?.(performance.now() - t0)
      if (answer === undefined) this.log('probe %s of %s failed: %s', msg.t, peer.toString(), open.closed ? 'probe stream closed' : `no answer within ${timeoutMs} ms`)
      return answer
    }
    // with a connection, opening a stream is part of the answer time (a frozen peer must not get longer); without
    // one, the dial gets its own budget (PROBE_DIAL_TIMEOUT_MS) and the answer its full time after it
    const dial = dialBudget && this.libp2p.getConnections(peer).length === 0
    const openMs = dial ? Math.max(timeoutMs, PROBE_DIAL_TIMEOUT_MS) : timeoutMs
    const deadline = Date.now() + timeoutMs
    const timer = new AbortController()
    const t = setTimeout(() => { timer.abort(new Error(`probe timed out after ${openMs} ms${dial ? ' (dialling)' : ''}`)) }, openMs)
    try {
      const signals = [timer.signal, this.controller.signal, ...(signal === undefined ? [] : [signal])]
      const ch = await this.channel(peer, AbortSignal.any(signals))
      const seq = ++this.seq
      const t0 = performance.now()
      const answer = await ch.ask(seq, { ...msg, seq }, dial ? timeoutMs : Math.max(1, deadline - Date.now()))
      if (answer !== undefined && msg.t === 'ping') this.target.rtt?.(performance.now() - t0)
      if (answer === undefined) throw new Error(ch.closed ? 'probe stream closed' : `no answer within ${timeoutMs} ms`)
      return answer
    } catch (err) {
      this.log('probe %s of %s failed: %s', msg.t, peer.toString(), (err as Error).message)
      return undefined
    } finally {
      clearTimeout(t)
    }
  }

  /** Pings `peer` directly: its (inc, ver) when it answered in time. */
  async ping (peer: PeerId, timeoutMs: number, signal?: AbortSignal, dialBudget = true): Promise<{ inc: number, ver: number } | undefined> {
    const id = peer.toString()
    const answer = await this.exchange(peer, { t: 'ping', ...this.target.own(), up: this.target.news(id) }, timeoutMs, signal, dialBudget)
    if (answer === undefined || answer.of !== id) return undefined
    if (answer.t !== 'ack') { this.target.heard(id, answer.up); return undefined }
    this.target.heard(id, answer.up, { inc: answer.inc, ver: answer.ver })
    return { inc: answer.inc, ver: answer.ver }
  }

  /**
   * A one-way heartbeat (a `quiet` ping) on the open channel to `peer`: it learns we are alive, and our news; no
   * answer, no timer. Without an open channel it is a full ping (which opens one); true when it went out, or
   * (a full ping) was answered.
   */
  async beat (peer: PeerId, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const id = peer.toString()
    const open = this.open.get(id)
    if (open !== undefined && !open.closed && signal?.aborted !== true && !this.controller.signal.aborted) {
      open.send({ t: 'ping', seq: ++this.seq, ...this.target.own(), up: this.target.news(id), quiet: true })
      return true
    }
    return await this.ping(peer, timeoutMs, signal) !== undefined
  }

  /**
   * Asks `via` to ping `target`: 'ack' when the target answered it, 'nack' when `via` answered that it did not,
   * 'none' when `via` did not answer either (then the trouble may well be ours).
   */
  async pingThrough (via: PeerId, target: string, timeoutMs: number, signal?: AbortSignal): Promise<'ack' | 'nack' | 'none'> {
    const answer = await this.exchange(via, { t: 'req', target, timeoutMs, up: this.target.news(via.toString()) }, timeoutMs + 500, signal)
    if (answer === undefined || answer.of !== target) return 'none'
    const about: MemberUpdate[] = answer.t === 'ack' ? [{ peer: target, inc: answer.inc, ver: answer.ver, state: 'alive' }] : []
    this.target.heard(via.toString(), [...about, ...answer.up])
    return answer.t
  }

  private async answer (msg: ProbeMessage, from: string): Promise<ProbeAnswer> {
    if (msg.t === 'ping') {
      this.target.heard(from, msg.up, { inc: msg.inc, ver: msg.ver })
      return { t: 'ack', seq: msg.seq, of: this.self, ...this.target.own(), up: this.target.news(from) }
    }
    this.target.heard(from, msg.up)
    let target: PeerId
    try { target = peerIdFromString(msg.target) } catch { return { t: 'nack', seq: msg.seq, of: msg.target, up: [] } }
    // within the requester's time, dial included: an intermediary that answers late counts as silent, and a frozen
    // target it had no connection to would then never be suspected
    const acked = msg.target === this.self ? this.target.own() : await this.ping(target, msg.timeoutMs, undefined, false)
    return acked === undefined
      ? { t: 'nack', seq: msg.seq, of: msg.target, up: this.target.news(from) }
      : { t: 'ack', seq: msg.seq, of: msg.target, ...acked, up: this.target.news(from) }
  }

  /** Answers every message on an inbound probe stream until it ends. */
  private async serve (stream: Stream, remote: PeerId): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_PROBE_MESSAGE_BYTES })
    const from = remote.toString()
    let inFlight = 0
    this.inbound.add(stream)
    try {
      while (true) {
        const msg = dagCbor.decode<unknown>((await lp.read({ signal: this.controller.signal })).subarray())
        const bad = checkProbeMessage(msg)
        if (bad !== undefined) throw new ProbeMessageError(`bad probe message from ${from}: ${bad}`)
        const m = msg as ProbeMessage
        if (m.t === 'ping' && m.quiet === true) { this.target.heard(from, m.up, { inc: m.inc, ver: m.ver }); continue }
        if (inFlight >= MAX_IN_FLIGHT) continue
        inFlight++
        void this.answer(m, from)
          // a small answer only waits when the stream's send window is full (a peer that stopped reading): then the
          // answers in flight reach MAX_IN_FLIGHT and later messages are dropped until the stream ends; no timer per answer
          .then(async answer => { await lp.write(dagCbor.encode(answer), { signal: this.controller.signal }) })
          .catch((err: Error) => { this.log('probe answer to %s failed: %s', from, err.message) })
          .finally(() => { inFlight-- })
      }
    } catch (err) {
      if (!this.controller.signal.aborted) this.log('probe stream from %s ended: %s', from, (err as Error).message)
      stream.abort(err as Error)
    } finally {
      this.inbound.delete(stream)
    }
  }
}
