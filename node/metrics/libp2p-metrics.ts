import { TrafficMetrics } from './traffic.ts'
import type { prometheusMetrics as PrometheusMetricsFactory } from '@libp2p/prometheus-metrics'
import type { Metrics, MultiaddrConnection, Stream } from '@libp2p/interface'
import type { Registry } from 'prom-client'

export interface Libp2pMetricsOptions {
  /** the peer's own registry (never prom-client's global one: tests run several peers in one process) */
  registry: Registry
  /**
   * libp2p's own metrics (@libp2p/prometheus-metrics) in the registry too: its factory, loaded only when asked
   * (see loadPrometheusMetrics) so peers without it do not pay for the import
   */
  libp2p?: typeof PrometheusMetricsFactory
  onCreate?: (traffic: TrafficMetrics) => void
}

/**
 * libp2p takes one `metrics` implementation. This one always counts bytes per peer and per protocol
 * (TrafficMetrics, read by the dashboard, bench and dflow_transfer_bytes_total) and, when asked, forwards to
 * @libp2p/prometheus-metrics so every libp2p component's metrics land in the peer's registry too.
 */
export function combinedMetrics (opts: Libp2pMetricsOptions): (components: any) => Metrics {
  return (components) => {
    const traffic = new TrafficMetrics(components)
    opts.onCreate?.(traffic)
    if (opts.libp2p === undefined) return traffic
    // collectDefaultMetrics off: process metrics are registered once by node/metrics/prometheus.ts
    const prom = opts.libp2p({ registry: opts.registry, collectDefaultMetrics: false })(components)
    return new CombinedMetrics(traffic, prom)
  }
}

export async function loadPrometheusMetrics (): Promise<typeof PrometheusMetricsFactory> {
  return (await import('@libp2p/prometheus-metrics')).prometheusMetrics
}

class CombinedMetrics implements Metrics {
  registerMetric: Metrics['registerMetric']
  registerMetricGroup: Metrics['registerMetricGroup']
  registerCounter: Metrics['registerCounter']
  registerCounterGroup: Metrics['registerCounterGroup']
  registerHistogram: Metrics['registerHistogram']
  registerHistogramGroup: Metrics['registerHistogramGroup']
  registerSummary: Metrics['registerSummary']
  registerSummaryGroup: Metrics['registerSummaryGroup']

  constructor (private readonly traffic: TrafficMetrics, private readonly prom: Metrics) {
    this.registerMetric = prom.registerMetric.bind(prom)
    this.registerMetricGroup = prom.registerMetricGroup.bind(prom)
    this.registerCounter = prom.registerCounter.bind(prom)
    this.registerCounterGroup = prom.registerCounterGroup.bind(prom)
    this.registerHistogram = prom.registerHistogram.bind(prom)
    this.registerHistogramGroup = prom.registerHistogramGroup.bind(prom)
    this.registerSummary = prom.registerSummary.bind(prom)
    this.registerSummaryGroup = prom.registerSummaryGroup.bind(prom)
  }

  trackMultiaddrConnection (maConn: MultiaddrConnection): void {
    this.traffic.trackMultiaddrConnection(maConn)
    this.prom.trackMultiaddrConnection(maConn)
  }

  trackProtocolStream (stream: Stream): void {
    this.traffic.trackProtocolStream(stream)
    this.prom.trackProtocolStream(stream)
  }

  traceFunction<F extends (...args: any[]) => any> (name: string, fn: F, options?: any): F {
    return this.prom.traceFunction(name, fn, options)
  }

  createTrace (): any { return this.prom.createTrace() }
}
