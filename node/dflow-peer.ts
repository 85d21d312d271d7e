import { createPeer, type Peer } from './peer.ts'
import { dflowServices, type DflowServices } from './services.ts'
import { trafficMetrics, type TrafficMetrics } from './metrics/traffic.ts'
import type { PeerConfig } from './config.ts'

export interface DflowPeer {
  peer: Peer
  services: DflowServices
  traffic?: TrafficMetrics
}

/**
 * A full dflow peer: libp2p with connection-level traffic counters, the HTTP API, and the dflow services
 * (DStore, worker pool, gossip events, membership, DScheduler, submit protocol). Not started.
 */
export async function createDflowPeer (config: PeerConfig): Promise<DflowPeer> {
  let traffic: TrafficMetrics | undefined
  let services: DflowServices | undefined
  const peer = await createPeer(config, {
    metrics: trafficMetrics(m => { traffic = m }),
    services: [p => { services = dflowServices(p, () => traffic); return services }]
  })
  if (services === undefined) throw new Error('dflow services were not created')
  return { peer, services, traffic }
}
