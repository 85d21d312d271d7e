import { encodeEvent, type RequestEvent } from '../../protocols/events/index.ts'
import { eventId, SYNC_ID_BYTES, type EventProof, type SyncDigest, type SyncEntry, type SyncSource } from '../../protocols/sync/index.ts'

const NO_BYTES = new Uint8Array(0)

/** Bookkeeping per held event beyond its bytes (map entry, id string, array slot): an estimate for accounting. */
const ENTRY_OVERHEAD_BYTES = 160

/**
 * One request's events as this peer holds them: each event's canonical encoding (`encodeEvent` is
 * deterministic dag-cbor, so every peer derives the same id from the same event), by id, in arrival order,
 * with the origin's proof (its gossip signature) when this peer has it, so the event can be relayed.
 *
 * The digest is the event count plus the XOR of the 16-byte ids. XOR is order-independent (peers that got
 * the same events in another order agree) and costs O(1) per added event; the log de-duplicates, so no id is
 * XORed in twice. Two different honest sets collide with probability 2^-128. A hostile peer could craft a set
 * that collides (XOR is linear); all it gains is that two peers skip comparing the events it forged.
 * A version vector would need per-origin sequence numbers the events do not carry.
 */
export class RequestEventLog {
  readonly request: string
  private readonly entries = new Map<string, SyncEntry>()
  private readonly hash = new Uint8Array(SYNC_ID_BYTES)
  /** the peers whose events this log holds: the ones that took part in the request */
  readonly peers = new Set<string>()
  /** encoded bytes held */
  bytes = 0
  /** events held by id only (over the byte budget) */
  stripped = 0
  /** set once a request-done is held: the request is over everywhere */
  done = false
  /** when the log last took a new event (epoch ms) */
  changedAt = Date.now()
  /** a done request still exchanged about until then (epoch ms): this peer lacks some of its results (RequestLogs.follow) */
  followUntil = 0

  /** Whether sync exchanges about this request: unfinished, or done and followed. */
  active (now: number): boolean { return !this.done || this.followUntil > now }

  constructor (request: string) {
    this.request = request
  }

  /**
   * Adds an event by its canonical bytes; answers whether it was new. Heartbeats are not request events.
   * A proof arriving with a copy of an event held without one is kept. With `keepBytes` false only the id is
   * kept (a log over its byte budget): the event still counts in the digest and for de-duplication, but this
   * peer cannot hand it out; others that hold it can.
   */
  add (bytes: Uint8Array, event: RequestEvent, proof?: EventProof, keepBytes = true): boolean {
    if (event.request !== this.request) throw new Error(`event of request ${event.request} added to the log of ${this.request}`)
    const id = eventId(bytes)
    const held = this.entries.get(id)
    if (held !== undefined) {
      if (held.proof === undefined && proof !== undefined) held.proof = proof
      return false
    }
    if (!keepBytes) {
      this.entries.set(id, { bytes: NO_BYTES })
      this.stripped++
      this.account(id, event)
      return true
    }
    // a view into a larger buffer (a gossip frame, a sync message) would keep all of it alive: keep a copy
    if (bytes.byteOffset !== 0 || bytes.byteLength !== bytes.buffer.byteLength || Buffer.isBuffer(bytes)) bytes = new Uint8Array(bytes)
    this.entries.set(id, proof === undefined ? { bytes } : { bytes, proof })
    this.bytes += bytes.byteLength
    this.account(id, event)
    return true
  }

  private account (id: string, event: RequestEvent): void {
    const raw = Buffer.from(id, 'hex')
    for (let i = 0; i < SYNC_ID_BYTES; i++) this.hash[i] ^= raw[i]
    this.peers.add(event.from)
    if (event.type === 'request-done') this.done = true
    this.changedAt = Date.now()
  }

  /** Marks the request over here without a request-done (the scheduler finished it): it stops counting as unfinished. */
  markDone (): void { this.done = true }

  has (id: string): boolean { return this.entries.has(id) }
  get size (): number { return this.entries.size }
  /** ids in arrival order (a request-started usually first, so a peer catching up loads the workflow early) */
  ids (): string[] { return [...this.entries.keys()] }
  /** the held events with these ids, in the order asked; unknown ids are skipped */
  get (ids: Iterable<string>): SyncEntry[] {
    const out: SyncEntry[] = []
    for (const id of ids) {
      const e = this.entries.get(id)
      if (e !== undefined && e.bytes !== NO_BYTES) out.push(e)
    }
    return out
  }

  digest (): SyncDigest { return { count: this.entries.size, hash: this.hash.slice() } }
  /** what this log costs in memory, roughly: bytes held plus a per-entry overhead */
  footprint (): number { return this.bytes + this.entries.size * ENTRY_OVERHEAD_BYTES }
}

export interface RequestLogsInit {
  /**
   * An event a sync exchange brought that this peer does not hold: the scheduler checks it as it checks
   * gossip, then takes it as any event (which calls `add` with its bytes and proof). Answers whether it was taken.
   */
  ingest: (entry: SyncEntry, event: RequestEvent, from: string) => boolean
  /** this peer's id, and how it signs: its own events get a proof so that other peers can relay them */
  self?: string
  sign?: (bytes: Uint8Array) => Promise<EventProof>
  /** called when a request becomes unfinished here (a first event of a request without request-done) */
  onActive?: (request: string) => void
  /** called when a log is created */
  onNewLog?: (request: string) => void
  /** a log whose request is done is dropped this long after its last change @default 3_600_000 */
  retentionMs?: number
  /** past this many bytes one request's log keeps further events by id only (digest and de-duplication still work) @default 64 MiB */
  maxRequestBytes?: number
}

/**
 * Every request's log on this peer, and the SyncSource the sync protocol reads. The scheduler adds every
 * request event it accepts (gossip, its own, hand-over, sync) and takes it only when `add` says it is new,
 * so it sees each event once whichever way it came. Events a sync brings in go to `init.ingest`.
 */
export class RequestLogs implements SyncSource {
  private readonly logs = new Map<string, RequestEventLog>()
  private readonly init: RequestLogsInit & { retentionMs: number, maxRequestBytes: number }

  constructor (init: RequestLogsInit) {
    this.init = { ...init, retentionMs: init.retentionMs ?? 3_600_000, maxRequestBytes: init.maxRequestBytes ?? 64 * 1024 * 1024 }
  }

  /**
   * Adds an accepted event (encoded here when `bytes` is not given) with the origin's proof when known
   * (the gossip message's signature); answers whether it was new. An own event is signed here.
   */
  add (event: RequestEvent, bytes: Uint8Array = encodeEvent(event), proof?: EventProof): boolean {
    let log = this.logs.get(event.request)
    if (log === undefined) {
      log = new RequestEventLog(event.request)
      this.logs.set(event.request, log)
      this.init.onNewLog?.(event.request)
    }
    const wasActive = log.size > 0 && !log.done
    if (!log.add(bytes, event, proof, log.bytes + bytes.byteLength <= this.init.maxRequestBytes)) return false
    if (!wasActive && !log.done) this.init.onActive?.(event.request)
    if (proof === undefined && event.from === this.init.self && this.init.sign !== undefined) {
      const held = log
      this.init.sign(bytes).then(p => { held.add(bytes, event, p) }, () => {})
    }
    return true
  }

  log (request: string): RequestEventLog | undefined { return this.logs.get(request) }
  /** requests with a log held here */
  get size (): number { return this.logs.size }
  /** bytes of events held, and a rough memory footprint */
  usage (): { requests: number, events: number, bytes: number, footprint: number } {
    let events = 0; let bytes = 0; let footprint = 0
    for (const l of this.logs.values()) { events += l.size; bytes += l.bytes; footprint += l.footprint() }
    return { requests: this.logs.size, events, bytes, footprint }
  }

  /** The scheduler finished the request here though no request-done arrived: stop exchanging for it. */
  markDone (request: string): void { this.logs.get(request)?.markDone() }

  /**
   * Keeps exchanging about a done request for `ms` more (0 stops): the scheduler finished it ok but has not
   * heard every instance's result, which the request-done alone would no longer let sync fetch.
   */
  follow (request: string, ms: number): void {
    const l = this.logs.get(request)
    if (l === undefined) return
    l.followUntil = ms > 0 ? Date.now() + ms : 0
    if (ms > 0) this.init.onActive?.(request)
  }

  /** Drops a request's log (the scheduler released the request). */
  release (request: string): void { this.logs.delete(request) }

  /**
   * Drops done logs unchanged for the retention. A log without request-done is kept 4 times as long: dropping
   * it while its request still runs here would let old events through the de-duplication again.
   */
  sweep (now = Date.now()): number {
    let n = 0
    for (const [id, l] of this.logs) {
      if (now - l.changedAt >= this.init.retentionMs * (l.done ? 1 : 4)) { this.logs.delete(id); n++ }
    }
    return n
  }

  // ---- SyncSource ----

  activeRequests (): string[] {
    const out: string[] = []
    const now = Date.now()
    for (const [id, l] of this.logs) if (l.active(now)) out.push(id)
    return out
  }

  hasActive (): boolean {
    const now = Date.now()
    for (const l of this.logs.values()) if (l.active(now)) return true
    return false
  }

  /** peers that took part in the unfinished requests here */
  participants (): Set<string> {
    const out = new Set<string>()
    const now = Date.now()
    for (const l of this.logs.values()) if (l.active(now)) for (const p of l.peers) out.add(p)
    return out
  }

  digest (request: string): SyncDigest | undefined { return this.logs.get(request)?.digest() }
  ids (request: string): string[] | undefined { return this.logs.get(request)?.ids() }
  events (request: string, ids: string[]): SyncEntry[] { return this.logs.get(request)?.get(ids) ?? [] }

  ingest (entry: SyncEntry, event: RequestEvent, from: string): boolean {
    const log = this.logs.get(event.request)
    if (log?.has(eventId(entry.bytes)) === true) {
      if (entry.proof !== undefined) log.add(entry.bytes, event, entry.proof)
      return false
    }
    return this.init.ingest(entry, event, from)
  }
}
