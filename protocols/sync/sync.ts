import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { decodeEvent, encodeEvent, type RequestEvent } from '../events/index.ts'
import { decodeSyncMessage, encodeSyncMessage, eventId, SyncMessageError, type RequestIds, type SyncEntry, type SyncMessage } from './codec.ts'
import { verifyEventProof } from './proof.ts'
import {
  MAX_SYNC_EVENTS, MAX_SYNC_IDS_PER_REQUEST, MAX_SYNC_MESSAGE_BYTES, MAX_SYNC_REQUESTS, SYNC_BATCH_BYTES, SYNC_EXCHANGE_TIMEOUT_MS,
  SYNC_ID_BYTES, SYNC_MAX_INBOUND_STREAMS, SYNC_PROTOCOL, SYNC_READ_TIMEOUT_MS
} from './constants.ts'
import type { SyncProtocolInit, SyncResult, SyncSource } from './index.ts'
import type { Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'
import { anyWithTimeout } from '../util/timeout-signal.ts'

/** The other side answered with an error message instead of its next message. */
export class SyncRemoteError extends Error {
  static readonly NAME = 'SyncRemoteError'
  constructor (message: string) {
    super(message)
    this.name = SyncRemoteError.NAME
  }
}

interface Session { lp: LengthPrefixedStream<Stream>, signal: AbortSignal, readTimeoutMs: number }
export interface SessionOptions { signal: AbortSignal, readTimeoutMs?: number }

function session (stream: Stream, options: SessionOptions): Session {
  return { lp: lpStream(stream, { maxDataLength: MAX_SYNC_MESSAGE_BYTES }), signal: options.signal, readTimeoutMs: options.readTimeoutMs ?? SYNC_READ_TIMEOUT_MS }
}

async function read<T extends SyncMessage['type']> (s: Session, type: T): Promise<SyncMessage & { type: T }> {
  const bytes = await s.lp.read({ signal: anyWithTimeout([s.signal], s.readTimeoutMs) })
  const msg = decodeSyncMessage(bytes.subarray())
  if (msg.type === 'error') throw new SyncRemoteError(msg.message)
  if (msg.type !== type) throw new SyncMessageError(`expected a ${type} message, got ${msg.type}`)
  return msg as SyncMessage & { type: T }
}

async function write (s: Session, msg: SyncMessage): Promise<void> {
  await s.lp.write(encodeSyncMessage(msg), { signal: s.signal })
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0
}

/**
 * Checks one received event: a request event in canonical form (so every peer derives the same id from it),
 * of an expected request, and published by the peer that sent it or proven to come from its `from`.
 * Answers the event, or undefined when it must be refused.
 */
async function accept (entry: SyncEntry, remote: string, expected: (ev: RequestEvent, id: string) => boolean): Promise<RequestEvent | undefined> {
  let ev
  try { ev = decodeEvent(entry.bytes) } catch { return undefined }
  if (ev.type === 'heartbeat' || !sameBytes(encodeEvent(ev), entry.bytes)) return undefined
  if (ev.from !== remote && (entry.proof === undefined || !await verifyEventProof(ev.from, entry.bytes, entry.proof))) return undefined
  return expected(ev, eventId(entry.bytes)) ? ev : undefined
}

/** Adds events to an outgoing batch while they fit the byte and count budgets; answers false when full. */
class Batch {
  readonly events: SyncEntry[] = []
  private bytes = 0
  add (e: SyncEntry): boolean {
    const size = e.bytes.byteLength + (e.proof === undefined ? 0 : e.proof.seqno.byteLength + e.proof.signature.byteLength + (e.proof.batch?.byteLength ?? 0))
    if (this.events.length >= MAX_SYNC_EVENTS || (this.events.length > 0 && this.bytes + size > SYNC_BATCH_BYTES)) return false
    this.events.push(e)
    this.bytes += size
    return true
  }
}

/** The side that opened the stream: digests out, id lists in, push (events + wants) out, events in. */
export async function initiateSync (stream: Stream, source: SyncSource, remote: string, options: SessionOptions): Promise<SyncResult> {
  const s = session(stream, options)
  const result: SyncResult = { requests: 0, sent: 0, received: 0, rejected: 0 }
  const active = source.activeRequests()
  // more active requests than one message names: a random window, so every one is compared over a few rounds
  const start = active.length > MAX_SYNC_REQUESTS ? Math.floor(Math.random() * active.length) : 0
  const picked = [...active.slice(start), ...active.slice(0, start)].slice(0, MAX_SYNC_REQUESTS)
  const digests = picked.flatMap(request => {
    const d = source.digest(request)
    return d === undefined ? [] : [{ request, count: d.count, hash: d.hash }]
  })
  await write(s, { type: 'digests', digests })
  const { lists } = await read(s, 'ids')
  const push = new Batch()
  const want: RequestIds[] = []
  const wanted = new Map<string, string>()
  for (const { request, ids } of lists) {
    const mine = source.ids(request) ?? []
    const theirs = new Set(ids)
    const held = new Set(mine)
    const missing = ids.filter(id => !held.has(id)).slice(0, MAX_SYNC_EVENTS - wanted.size)
    if (missing.length > 0) {
      want.push({ request, ids: missing })
      for (const id of missing) wanted.set(id, request)
    }
    const lacking = mine.filter(id => !theirs.has(id))
    if (missing.length > 0 || lacking.length > 0) result.requests++
    for (const e of source.events(request, lacking)) if (!push.add(e)) break
  }
  await write(s, { type: 'push', events: push.events, want })
  result.sent = push.events.length
  const { events } = await read(s, 'events')
  for (const entry of events) {
    const ev = await accept(entry, remote, (ev, id) => wanted.get(id) === ev.request && wanted.delete(id))
    if (ev === undefined) result.rejected++
    else if (source.ingest(entry, ev, remote)) result.received++
  }
  await stream.close({ signal: s.signal })
  return result
}

/** The side that accepted the stream. Bad input ends the exchange with an error message; never throws. */
export async function respondSync (stream: Stream, source: SyncSource, remote: string, options: SessionOptions): Promise<SyncResult> {
  const s = session(stream, options)
  const result: SyncResult = { requests: 0, sent: 0, received: 0, rejected: 0 }
  try {
    const { digests } = await read(s, 'digests')
    const lists: RequestIds[] = []
    const answered = new Set<string>()
    let budget = SYNC_BATCH_BYTES
    const answer = (request: string): void => {
      const ids = (source.ids(request) ?? []).slice(0, MAX_SYNC_IDS_PER_REQUEST)
      if (lists.length >= MAX_SYNC_REQUESTS || (lists.length > 0 && ids.length * SYNC_ID_BYTES > budget)) return
      budget -= ids.length * SYNC_ID_BYTES
      lists.push({ request, ids })
      answered.add(request)
    }
    for (const d of digests) {
      const mine = source.digest(d.request)
      if (mine === undefined || mine.count !== d.count || !sameBytes(mine.hash, d.hash)) answer(d.request)
    }
    // requests unfinished here that the initiator did not name: it may have missed them entirely
    const named = new Set(digests.map(d => d.request))
    for (const request of source.activeRequests()) if (!named.has(request)) answer(request)
    result.requests = lists.length
    await write(s, { type: 'ids', lists })
    const push = await read(s, 'push')
    for (const entry of push.events) {
      const ev = await accept(entry, remote, ev => answered.has(ev.request))
      if (ev === undefined) result.rejected++
      else if (source.ingest(entry, ev, remote)) result.received++
    }
    const out = new Batch()
    fill: for (const { request, ids } of push.want) {
      if (!answered.has(request)) continue
      for (const e of source.events(request, ids)) if (!out.add(e)) break fill
    }
    await write(s, { type: 'events', events: out.events })
    result.sent = out.events.length
    await stream.close({ signal: s.signal })
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    if (err instanceof SyncMessageError) await write(s, { type: 'error', message }).catch(() => {})
    stream.abort(err instanceof Error ? err : new Error(message))
    throw err
  }
  return result
}

/** Serves `/dflow/sync/1.0.0` from a SyncSource and opens exchanges with other peers. */
export class SyncProtocol {
  private readonly controller = new AbortController()
  private readonly readTimeoutMs: number
  private readonly exchangeTimeoutMs: number
  /** for metrics: exchanges started and served, events moved, failures */
  readonly counters = { exchanges: 0, served: 0, sent: 0, received: 0, rejected: 0, failures: 0 }

  constructor (private readonly network: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>, private readonly source: SyncSource,
    private readonly log: Logger, init: SyncProtocolInit = {}) {
    this.readTimeoutMs = init.readTimeoutMs ?? SYNC_READ_TIMEOUT_MS
    this.exchangeTimeoutMs = init.exchangeTimeoutMs ?? SYNC_EXCHANGE_TIMEOUT_MS
  }

  async start (): Promise<void> {
    await this.network.handle(SYNC_PROTOCOL, (stream, connection) => { void this.serve(stream, connection.remotePeer.toString()) },
      { maxInboundStreams: SYNC_MAX_INBOUND_STREAMS })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await this.network.unhandle(SYNC_PROTOCOL)
  }

  private signal (signal?: AbortSignal): AbortSignal {
    return anyWithTimeout([this.controller.signal, signal], this.exchangeTimeoutMs)
  }

  private count (r: SyncResult): void {
    this.counters.sent += r.sent
    this.counters.received += r.received
    this.counters.rejected += r.rejected
  }

  private async serve (stream: Stream, from: string): Promise<void> {
    try {
      this.count(await respondSync(stream, this.source, from, { signal: this.signal(), readTimeoutMs: this.readTimeoutMs }))
      this.counters.served++
    } catch (err) {
      this.counters.failures++
      this.log('sync from %s failed: %s', from, (err as Error).message)
    }
  }

  /** One exchange with `peer`. Throws on a network failure, a timeout, or a bad or error answer. */
  async exchange (peer: PeerId, signal?: AbortSignal): Promise<SyncResult> {
    const options = { signal: this.signal(signal), readTimeoutMs: this.readTimeoutMs }
    this.counters.exchanges++
    let stream: Stream | undefined
    try {
      stream = await this.network.dialProtocol(peer, SYNC_PROTOCOL, options)
      const result = await initiateSync(stream, this.source, peer.toString(), options)
      this.count(result)
      return result
    } catch (err) {
      this.counters.failures++
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
