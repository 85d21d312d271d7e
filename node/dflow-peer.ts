import { Registry } from 'prom-client'
import { createPeer, type Peer } from './peer.ts'
import { dflowServices, type DflowServices } from './services.ts'
import { observabilityService, type ObservabilityService } from './observability.ts'
import { combinedMetrics, loadPrometheusMetrics } from './metrics/libp2p-metrics.ts'
import { resolveConfig, type PeerConfig } from './config.ts'
import type { TrafficMetrics } from './metrics/traffic.ts'

export interface DflowPeer {
  peer: Peer
  services: DflowServices
  observability: ObservabilityService
  traffic?: TrafficMetrics
}

/**
 * A full dflow peer: libp2p with connection-level traffic counters (and libp2p's own Prometheus metrics with
 * `libp2pMetrics`), the HTTP API, the dflow services (DStore, worker pool, gossip events, membership,
 * DScheduler, submit protocol) and observability (GET /metrics, the status protocol, the dashboard). Not started.
 */
export async function createDflowPeer (config: PeerConfig): Promise<DflowPeer> {
  let traffic: TrafficMetrics | undefined
  let services: DflowServices | undefined
  let observability: ObservabilityService | undefined
  const registry = new Registry()
  const libp2pMetrics = resolveConfig(config).libp2pMetrics ? await loadPrometheusMetrics() : undefined
  const peer = await createPeer(config, {
    metrics: combinedMetrics({ registry, libp2p: libp2pMetrics, onCreate: m => { traffic = m } }),
    services: [
      p => { services = dflowServices(p, () => traffic); return services },
      p => {
        if (services === undefined) throw new Error('dflow services were not created')
        observability = observabilityService(p, services, registry, () => traffic)
        return observability
      }
    ]
  })
  if (services === undefined || observability === undefined) throw new Error('dflow services were not created')
  return { peer, services, observability, traffic }
}
