import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { RequestEvent, RequestMode } from '../../protocols/events/index.ts'
import type { TrafficMetrics } from './traffic.ts'
import type { Route } from '../api/types.ts'
import { WorkLoopDelay } from '../util/loop-delay.ts'

/** What the dflow metrics read; every field is read at scrape time or from events, nothing polls. */
export interface DflowMetricSources {
  self: string
  /** the scheduler's public counters object (claims, takeovers, claimsLost, ...) */
  schedulerCounters: () => Record<string, number>
  /** the scheduler's event target (`scheduler:event`, `scheduler:request-finished`) */
  scheduler: EventTarget
  /** the events this peer holds for a request (to learn its mode and submitter) */
  eventsOf: (request: string) => RequestEvent[]
  traffic: () => TrafficMetrics | undefined
  storeBytes: () => number
  connectedPeers: () => number
  /** whether the peer has work (unfinished requests, running steps): event-loop delay is sampled meanwhile */
  busy?: () => boolean
  /** the function pool's figures (instances by state, starts by kind) */
  pool?: () => PoolMetricSource
}

/** What the pool gauges read (a subset of the executor's PoolStats, so metrics/ needs no executor import). */
export interface PoolMetricSource {
  idle: number
  busy: number
  starting: number
  queued: number
  stemCells: number
  instanceStarts: number
  stemCellStarts: number
  warmStarts: number
}

const CLAIM_COUNTERS = new Set(['claims', 'claimsLost', 'takeovers'])

export const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
export const COLD_START_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * The peer's Prometheus registry (its own, never prom-client's global one) with the dflow metrics
 * (docs/metrics.md). Counters the scheduler already keeps are read through collect callbacks at scrape time,
 * so the scheduler needs no prom-client code; durations come from its step-done events.
 */
export class DflowMetrics {
  private readonly loop: WorkLoopDelay
  private readonly detach: Array<() => void> = []

  /** `registry` exists before libp2p does (libp2p's own metrics go in it too), hence passed in */
  constructor (readonly registry: Registry, private readonly s: DflowMetricSources) {
    const registers = [registry]
    // prom-client's event-loop lag histogram samples on a timer of this period for the life of the process: its
    // default of 10 ms woke an idle peer 100 times a second. dflow_event_loop_lag_seconds below samples at 20 ms,
    // but only while the peer has work.
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 })
    this.loop = new WorkLoopDelay({ busy: s.busy })
    const loop = this.loop.histogram

    const requests = new Counter({ name: 'dflow_requests_total', help: 'Requests submitted to this peer that finished, by mode and status (sum over peers = network total)', labelNames: ['mode', 'status'], registers })
    const steps = new Histogram({ name: 'dflow_step_duration_seconds', help: 'Run time of the step instances this peer ran (start to end)', buckets: STEP_BUCKETS, registers })
    const cold = new Histogram({ name: 'dflow_cold_start_seconds', help: 'Cold starts of function instances for steps this peer ran (warm starts are not observed)', buckets: COLD_START_BUCKETS, registers })
    const counters = (): Record<string, number> => s.schedulerCounters()
    // eslint-disable-next-line no-new
    new Counter({
      name: 'dflow_claims_total',
      help: 'Claims this peer made: won (it ran the instance), lost (another claim won), takeover (claimed over a dead or stale claimant)',
      labelNames: ['outcome'],
      registers,
      collect () {
        const c = counters()
        const lost = c.claimsLost ?? 0
        this.reset()
        this.inc({ outcome: 'won' }, Math.max(0, (c.claims ?? 0) - lost))
        this.inc({ outcome: 'lost' }, lost)
        this.inc({ outcome: 'takeover' }, c.takeovers ?? 0)
      }
    })
    // eslint-disable-next-line no-new
    new Counter({
      name: 'dflow_transfer_bytes_total',
      help: 'Payload bytes on libp2p streams, by protocol and direction (sent, received)',
      labelNames: ['protocol', 'direction'],
      registers,
      collect () {
        const snap = s.traffic()?.snapshot()
        this.reset()
        for (const [protocol, b] of Object.entries(snap?.protocols ?? {})) {
          this.inc({ protocol, direction: 'sent' }, b.sent)
          this.inc({ protocol, direction: 'received' }, b.received)
        }
      }
    })
    // eslint-disable-next-line no-new
    new Gauge({ name: 'dflow_store_bytes', help: 'Bytes of blocks this peer\'s DStore holds', registers, collect () { this.set(s.storeBytes()) } })
    // eslint-disable-next-line no-new
    new Gauge({ name: 'dflow_peers_connected', help: 'Peers with an open connection to this peer', registers, collect () { this.set(s.connectedPeers()) } })
    // eslint-disable-next-line no-new
    new Gauge({
      name: 'dflow_event_loop_lag_seconds',
      help: 'p99 event-loop delay since the previous scrape (every timing on this peer suffers it when the process is busy)',
      registers,
      collect () {
        const p99 = loop.count > 0 ? loop.percentile(99) / 1e9 : 0
        loop.reset()
        this.set(p99)
      }
    })
    // eslint-disable-next-line no-new
    new Gauge({
      name: 'dflow_scheduler_counter',
      help: 'The scheduler\'s other counters (requestsSeen, requestsFinished, reruns, rereplications, fencedDrops, ...)',
      labelNames: ['counter'],
      registers,
      collect () {
        const c = counters()
        this.reset()
        // every other counter the scheduler keeps (claims are dflow_claims_total), so new ones appear without code here
        for (const [k, v] of Object.entries(c)) if (typeof v === 'number' && !CLAIM_COUNTERS.has(k)) this.set({ counter: k }, v)
      }
    })

    if (s.pool != null) {
      const pool = s.pool
      // eslint-disable-next-line no-new
      new Gauge({
        name: 'dflow_pool_instances',
        help: 'Function instances on this peer by state: idle (warm), busy, starting, stem_cell (booted, no module yet); queued = invocations waiting for a slot',
        labelNames: ['state'],
        registers,
        collect () {
          const p = pool()
          this.set({ state: 'idle' }, p.idle)
          this.set({ state: 'busy' }, p.busy)
          this.set({ state: 'starting' }, p.starting)
          this.set({ state: 'stem_cell' }, p.stemCells)
          this.set({ state: 'queued' }, p.queued)
        }
      })
      // eslint-disable-next-line no-new
      new Counter({
        name: 'dflow_instance_starts_total',
        help: 'Instance starts on this peer: boot (a fresh process or worker), stem_cell (a booted cell took the module); and invocations that found a warm instance (warm)',
        labelNames: ['kind'],
        registers,
        collect () {
          const p = pool()
          this.reset()
          this.inc({ kind: 'boot' }, Math.max(0, p.instanceStarts - p.stemCellStarts))
          this.inc({ kind: 'stem_cell' }, p.stemCellStarts)
          this.inc({ kind: 'warm' }, p.warmStarts)
        }
      })
    }

    const onEvent = (e: Event): void => {
      this.loop.work()
      const ev = (e as CustomEvent<RequestEvent>).detail
      if (ev?.type !== 'step-done' || ev.from !== s.self) return
      if (ev.endAt >= ev.startAt) steps.observe((ev.endAt - ev.startAt) / 1000)
      if (ev.coldStartMs > 0) cold.observe(ev.coldStartMs / 1000)
    }
    const onFinished = (e: Event): void => {
      const d = (e as CustomEvent<{ request: string, status: string, mode?: RequestMode }>).detail
      const started = s.eventsOf(d.request).find(x => x.type === 'request-started')
      // every peer sees every request finish: count it once, at the peer it was submitted to
      if (started?.type !== 'request-started' || started.submitter !== s.self) return
      requests.inc({ mode: d.mode ?? started.mode, status: d.status })
    }
    s.scheduler.addEventListener('scheduler:event', onEvent)
    s.scheduler.addEventListener('scheduler:request-finished', onFinished)
    this.detach.push(() => {
      s.scheduler.removeEventListener('scheduler:event', onEvent)
      s.scheduler.removeEventListener('scheduler:request-finished', onFinished)
    })
  }

  start (): void {}

  stop (): void {
    this.loop.stop()
    for (const d of this.detach.splice(0)) d()
  }

  routes (): Route[] {
    return [{
      method: 'GET',
      path: '/metrics',
      handler: async (_req, res) => {
        const body = await this.registry.metrics()
        res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': Buffer.byteLength(body) })
        res.end(body)
        return undefined
      }
    }]
  }
}
