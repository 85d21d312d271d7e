import { StatusProtocol, type PeerStatusInfo } from '../protocols/status/index.ts'
import { networkRoutes } from './api/network-view.ts'
import { dashboardRoutes } from './dashboard/dashboard-routes.ts'
import { DflowMetrics } from './metrics/prometheus.ts'
import type { Registry } from 'prom-client'
import type { Peer, PeerService } from './peer.ts'
import type { DflowServices } from './services.ts'
import type { TrafficMetrics } from './metrics/traffic.ts'
import type { Route } from './api/types.ts'

export interface ObservabilityService extends PeerService {
  metrics: DflowMetrics
  status: StatusProtocol
}

/**
 * What lets people see a peer: GET /metrics (Prometheus), the status protocol and GET /v1/network (every
 * peer, alive or dead, with the figures only it knows), and the dashboard (GET /, GET /requests/<id>).
 * Nothing here polls or broadcasts: work happens when a scraper or a dashboard asks.
 */
export function observabilityService (peer: Peer, services: DflowServices, registry: Registry, traffic: () => TrafficMetrics | undefined): ObservabilityService {
  const { libp2p, config, logger } = peer
  const self = peer.peerId.toString()
  const { scheduler, store, pool, membership } = services
  const connectedPeers = (): Set<string> => new Set(libp2p.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString()))
  const local = (): PeerStatusInfo => ({
    slots: config.slots,
    busy: pool.stats().busy,
    storeBytes: store.stats().bytes,
    storeCapacity: config.storeCapacity,
    connections: connectedPeers().size,
    startedAt: peer.startedAt,
    rss: process.memoryUsage.rss()
  })
  const status = new StatusProtocol(libp2p, local, logger.forComponent('dflow:status'))
  const metrics = new DflowMetrics(registry, {
    self,
    schedulerCounters: () => scheduler.metrics as unknown as Record<string, number>,
    scheduler,
    eventsOf: id => scheduler.eventsOf(id),
    traffic,
    storeBytes: () => store.stats().bytes,
    connectedPeers: () => connectedPeers().size,
    busy: () => services.sync.logs.hasActive() || pool.stats().busy > 0,
    pool: () => pool.stats()
  })
  // every peer heard of, so the network view keeps listing the dead ones
  const known = new Set<string>()
  const remember = (ev: Event): void => { const p = (ev as CustomEvent<string>).detail; if (typeof p === 'string') known.add(p) }
  return {
    metrics,
    status,
    async start () {
      membership.addEventListener('membership:peer-dead', remember)
      membership.addEventListener('membership:peer-alive', remember)
      metrics.start()
      await status.start()
    },
    async stop () {
      await status.stop()
      metrics.stop()
      membership.removeEventListener('membership:peer-dead', remember)
      membership.removeEventListener('membership:peer-alive', remember)
    },
    routes (): Route[] {
      return [
        ...metrics.routes(),
        ...networkRoutes({
          self,
          known: () => {
            for (const p of membership.live()) known.add(p)
            for (const p of connectedPeers()) known.add(p)
            known.delete(self)
            return known
          },
          isLive: p => membership.isLive(p),
          connected: p => connectedPeers().has(p),
          local,
          ask: async (p, signal) => status.ask(p, signal)
        }),
        ...dashboardRoutes(self, logger.forComponent('dflow:dashboard'))
      ]
    }
  }
}
