import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { MAX_INDIRECT_TIMEOUT_MS, MAX_PROBE_MESSAGE_BYTES, MAX_UPDATES, PROBE_PROTOCOL } from './constants.ts'
import type { MemberUpdate, ProbeAnswer, ProbeMessage, ProbeTarget } from './index.ts'
import type { Connection, Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'

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
  }
  return undefined
}

/** Why a decoded probe message is malformed, or undefined when it is fine. */
export function checkProbeMessage (msg: unknown): string | undefined {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return 'message is not a map'
  const m = msg as Record<string, unknown>
  if (m.t === 'ping') return nat(m.inc) && nat(m.ver) ? checkUpdates(m.up) : 'ping needs inc and ver'
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
  if (typeof m.of !== 'string' || !PEER_ID.test(m.of)) return 'answer.of is not a peer id'
  if (m.t === 'ack') return nat(m.inc) && nat(m.ver) ? checkUpdates(m.up) : 'ack needs inc and ver'
  if (m.t === 'nack') return checkUpdates(m.up)
  return `unknown answer type ${JSON.stringify(m.t)}`
}

type ProbeLibp2p = Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol'>

/** Serves probes to other peers and sends them; the membership decides whom and what the answers mean. */
export class ProbeProtocol {
  private readonly controller = new AbortController()
  private readonly self: string

  constructor (private readonly libp2p: ProbeLibp2p, private readonly target: ProbeTarget, private readonly log: Logger) {
    this.self = libp2p.peerId.toString()
  }

  async start (): Promise<void> {
    await this.libp2p.handle(PROBE_PROTOCOL, (stream: Stream, connection: Connection) => { void this.serve(stream, connection.remotePeer) }, { maxInboundStreams: 64, maxOutboundStreams: 64 })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await this.libp2p.unhandle(PROBE_PROTOCOL)
  }

  /** One exchange on a fresh stream; undefined when it failed or timed out (the reason is logged). */
  private async exchange (peer: PeerId, msg: ProbeMessage, timeoutMs: number, signal?: AbortSignal): Promise<ProbeAnswer | undefined> {
    const options = { signal: AbortSignal.any([signal ?? this.controller.signal, this.controller.signal, AbortSignal.timeout(timeoutMs)]) }
    let stream: Stream | undefined
    try {
      stream = await this.libp2p.dialProtocol(peer, PROBE_PROTOCOL, options)
      const lp = lpStream(stream, { maxDataLength: MAX_PROBE_MESSAGE_BYTES })
      await lp.write(dagCbor.encode(msg), options)
      const answer = dagCbor.decode<unknown>((await lp.read(options)).subarray())
      await stream.close(options)
      const bad = checkProbeAnswer(answer)
      if (bad !== undefined) throw new ProbeMessageError(`bad probe answer from ${peer.toString()}: ${bad}`)
      return answer as ProbeAnswer
    } catch (err) {
      stream?.abort(err as Error)
      this.log('probe %s of %s failed: %s', msg.t, peer.toString(), (err as Error).message)
      return undefined
    }
  }

  /** Pings `peer` directly: its (inc, ver) when it answered in time. */
  async ping (peer: PeerId, timeoutMs: number, signal?: AbortSignal): Promise<{ inc: number, ver: number } | undefined> {
    const id = peer.toString()
    const answer = await this.exchange(peer, { t: 'ping', ...this.target.own(), up: this.target.news(id) }, timeoutMs, signal)
    if (answer === undefined || answer.of !== id) return undefined
    if (answer.t !== 'ack') { this.target.heard(id, answer.up); return undefined }
    this.target.heard(id, answer.up, { inc: answer.inc, ver: answer.ver })
    return { inc: answer.inc, ver: answer.ver }
  }

  /** Asks `via` to ping `target`: true when the target answered it (its news is taken in as well). */
  async pingThrough (via: PeerId, target: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const answer = await this.exchange(via, { t: 'req', target, timeoutMs, up: this.target.news(via.toString()) }, timeoutMs + 500, signal)
    if (answer === undefined || answer.of !== target) return false
    const about: MemberUpdate[] = answer.t === 'ack' ? [{ peer: target, inc: answer.inc, ver: answer.ver, state: 'alive' }] : []
    this.target.heard(via.toString(), [...about, ...answer.up])
    return answer.t === 'ack'
  }

  private async answer (msg: ProbeMessage, from: string): Promise<ProbeAnswer> {
    if (msg.t === 'ping') {
      this.target.heard(from, msg.up, { inc: msg.inc, ver: msg.ver })
      return { t: 'ack', of: this.self, ...this.target.own(), up: this.target.news(from) }
    }
    this.target.heard(from, msg.up)
    let target: PeerId
    try { target = peerIdFromString(msg.target) } catch { return { t: 'nack', of: msg.target, up: [] } }
    const acked = msg.target === this.self ? this.target.own() : await this.ping(target, msg.timeoutMs)
    return acked === undefined
      ? { t: 'nack', of: msg.target, up: this.target.news(from) }
      : { t: 'ack', of: msg.target, ...acked, up: this.target.news(from) }
  }

  private async serve (stream: Stream, remote: PeerId): Promise<void> {
    const options = { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(MAX_INDIRECT_TIMEOUT_MS + 1000)]) }
    const lp = lpStream(stream, { maxDataLength: MAX_PROBE_MESSAGE_BYTES })
    try {
      const msg = dagCbor.decode<unknown>((await lp.read(options)).subarray())
      const bad = checkProbeMessage(msg)
      if (bad !== undefined) throw new ProbeMessageError(`bad probe message from ${remote.toString()}: ${bad}`)
      await lp.write(dagCbor.encode(await this.answer(msg as ProbeMessage, remote.toString())), options)
      await stream.close(options)
    } catch (err) {
      this.log('probe stream from %s failed: %s', remote.toString(), (err as Error).message)
      stream.abort(err as Error)
    }
  }
}
