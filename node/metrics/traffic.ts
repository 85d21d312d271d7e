import { peerIdFromString } from '@libp2p/peer-id'
import type {
  Connection, Counter, CounterGroup, Histogram, HistogramGroup, Metric, MetricGroup, Metrics,
  MultiaddrConnection, Stream, Summary, SummaryGroup, TypedEventTarget, Libp2pEvents
} from '@libp2p/interface'

export interface ByteCount { sent: number, received: number }

export interface TrafficSnapshot {
  total: ByteCount
  /** bytes on the raw (encrypted, muxed) connection, per remote peer id; "unknown" until an inbound peer is identified */
  peers: Record<string, ByteCount>
  /** payload bytes per negotiated protocol, counted on muxed streams (after protocol negotiation) */
  protocols: Record<string, ByteCount>
}

interface Counted { onData?: (data: any) => void, sendData?: (data: any) => { sentBytes: number, canSendMore: boolean } }

interface ConnRecord { peer?: string, pending: ByteCount }

const noopMetric: Metric & Counter & Histogram & Summary = {
  update () {}, increment () {}, decrement () {}, reset () {}, observe () {}, timer: () => () => {}
}
const noopGroup: MetricGroup & CounterGroup & HistogramGroup & SummaryGroup = {
  update () {}, increment () {}, decrement () {}, reset () {}, observe () {}, timer: () => () => {}
}

/**
 * Byte counters for the whole node. libp2p hands every raw connection to trackMultiaddrConnection before
 * encryption and every negotiated stream to trackProtocolStream. Both are AbstractMessageStreams: the
 * transport feeds incoming bytes through `onData()` and writes outgoing bytes through `sendData()`, so
 * wrapping those two methods on the instance counts everything that crosses the wire without changing
 * how data flows (a 'message' listener would: streams buffer until someone listens).
 */
export class TrafficMetrics implements Metrics {
  private readonly totals: ByteCount = { sent: 0, received: 0 }
  private readonly perPeer = new Map<string, ByteCount>()
  private readonly perProtocol = new Map<string, ByteCount>()
  private readonly byConn = new WeakMap<object, ConnRecord>()

  constructor (components: { events?: TypedEventTarget<Libp2pEvents> } = {}) {
    // inbound raw connections only learn their peer after the noise handshake
    components.events?.addEventListener('connection:open', (evt) => { this.identify(evt.detail) })
  }

  trackMultiaddrConnection (maConn: MultiaddrConnection): void {
    const rec: ConnRecord = { pending: { sent: 0, received: 0 } }
    const id = maConn.remoteAddr.getComponents().findLast(c => c.name === 'p2p')?.value
    if (id != null) rec.peer = peerIdFromString(id).toString()
    this.byConn.set(maConn, rec)
    this.wrap(maConn as unknown as Counted, (n, dir) => {
      this.totals[dir] += n
      if (rec.peer != null) this.bucket(this.perPeer, rec.peer)[dir] += n
      else rec.pending[dir] += n
    })
  }

  trackProtocolStream (stream: Stream): void {
    const protocol = stream.protocol ?? 'unknown'
    this.wrap(stream as unknown as Counted, (n, dir) => { this.bucket(this.perProtocol, protocol)[dir] += n })
  }

  snapshot (): TrafficSnapshot {
    const copy = (m: Map<string, ByteCount>): Record<string, ByteCount> =>
      Object.fromEntries([...m].map(([k, v]) => [k, { ...v }]))
    return { total: { ...this.totals }, peers: copy(this.perPeer), protocols: copy(this.perProtocol) }
  }

  /** Bytes exchanged with one peer so far. */
  peer (peerId: string): ByteCount {
    return { ...(this.perPeer.get(peerId) ?? { sent: 0, received: 0 }) }
  }

  private identify (conn: Connection): void {
    const maConn = (conn as Connection & { maConn?: object }).maConn
    const rec = maConn != null ? this.byConn.get(maConn) : undefined
    if (rec == null || rec.peer != null) return
    rec.peer = conn.remotePeer.toString()
    const b = this.bucket(this.perPeer, rec.peer)
    b.sent += rec.pending.sent
    b.received += rec.pending.received
    rec.pending = { sent: 0, received: 0 }
  }

  private bucket (m: Map<string, ByteCount>, key: string): ByteCount {
    let b = m.get(key)
    if (b == null) { b = { sent: 0, received: 0 }; m.set(key, b) }
    return b
  }

  private wrap (target: Counted, count: (n: number, dir: 'sent' | 'received') => void): void {
    const onData = target.onData
    if (typeof onData === 'function') {
      target.onData = (data: { byteLength: number }) => { count(data.byteLength, 'received'); onData.call(target, data) }
    }
    const sendData = target.sendData
    if (typeof sendData === 'function') {
      target.sendData = (data: unknown) => {
        const result = sendData.call(target, data)
        count(result.sentBytes, 'sent')
        return result
      }
    }
  }

  registerMetric (name: string, options?: any): any { return options?.calculate != null ? undefined : noopMetric }
  registerMetricGroup (name: string, options?: any): any { return options?.calculate != null ? undefined : noopGroup }
  registerCounter (name: string, options?: any): any { return options?.calculate != null ? undefined : noopMetric }
  registerCounterGroup (name: string, options?: any): any { return options?.calculate != null ? undefined : noopGroup }
  registerHistogram (name: string, options?: any): any { return options?.calculate != null ? undefined : noopMetric }
  registerHistogramGroup (name: string, options?: any): any { return options?.calculate != null ? undefined : noopGroup }
  registerSummary (name: string, options?: any): any { return options?.calculate != null ? undefined : noopMetric }
  registerSummaryGroup (name: string, options?: any): any { return options?.calculate != null ? undefined : noopGroup }
  traceFunction<F extends (...args: any[]) => any> (name: string, fn: F): F { return fn }
  createTrace (): any { return undefined }
}

/**
 * Pass as `metrics` to createDflowLibp2p. The created instance is handed to `onCreate` (libp2p builds it
 * inside createLibp2p, so this is how the caller gets hold of it).
 */
export function trafficMetrics (onCreate?: (metrics: TrafficMetrics) => void): (components: any) => TrafficMetrics {
  return (components) => {
    const m = new TrafficMetrics(components)
    onCreate?.(m)
    return m
  }
}
