import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { peerIdFromString } from '@libp2p/peer-id'
import { GossipBus } from './dscheduler/bus.ts'
import { BundleLoader } from './dscheduler/loader.ts'
import { ProbeMembership } from './dscheduler/membership.ts'
import { DScheduler } from './dscheduler/scheduler.ts'
import { DStoreService } from './dstore/dstore.ts'
import { storeRoutes } from './dstore/routes.ts'
import { WorkerPool } from './executor/pool.ts'
import { requestRoutes } from './api/requests.ts'
import { workflowRoutes } from './api/workflows.ts'
import { SubmitProtocol } from '../protocols/submit/index.ts'
import type { Peer, PeerService } from './peer.ts'
import type { TrafficMetrics } from './metrics/traffic.ts'
import type { Route } from './api/types.ts'
import { secureRequest } from './dscheduler/secure.ts'

/** The dflow parts of a peer, wired together: DStore, the worker pool, gossip, membership, DScheduler, submit. */
export interface DflowServices extends PeerService {
  store: DStoreService
  pool: WorkerPool
  bus: GossipBus
  membership: ProbeMembership
  loader: BundleLoader
  scheduler: DScheduler
  submit: SubmitProtocol
}

export function dflowServices (peer: Peer, traffic?: () => TrafficMetrics | undefined): DflowServices {
  const { config, libp2p, logger } = peer
  const self = peer.peerId.toString()
  const log = logger.forComponent('dflow:services')
  const bus = new GossipBus(libp2p, logger.forComponent('dflow:events'), { dropEvents: config.dropEvents, seed: self })
  const membership = new ProbeMembership(self, libp2p, { probeIntervalMs: config.heartbeatMs, failureTimeoutMs: config.failureTimeoutMs }, logger.forComponent('dflow:membership'))
  let scheduler: DScheduler | undefined
  const store = new DStoreService({
    libp2p,
    logger,
    config: {
      chunkSize: config.chunkSize,
      replicas: config.replicas,
      inlineLimit: config.inlineLimit,
      capacity: config.storeCapacity,
      retentionMs: config.retentionMs,
      dataDir: config.dataDir
    },
    livePeers: () => membership.live().filter(p => p !== self).map(p => peerIdFromString(p)),
    acceptPush: meta => scheduler?.wantsPush(meta.request) ?? false
  })
  const pool = new WorkerPool({ slots: config.slots, idleMs: config.idleInstanceMs })
  const loader = new BundleLoader(store)
  let submit: SubmitProtocol | undefined
  scheduler = new DScheduler({
    self,
    bus,
    store,
    pool,
    loader,
    membership,
    logger,
    secureRequest: async started => { if (submit !== undefined) await secureRequest(started, { self, store, membership, submit, log }) }
  }, { slots: config.slots, retentionMs: config.retentionMs, leaseMs: config.leaseMs, recordsDir: config.dataDir === undefined ? '' : join(config.dataDir, 'requests') })
  const sched = scheduler
  membership.addEventListener('membership:peer-dead', ev => {
    log('peer %s presumed dead; re-examining its claims and re-replicating', ev.detail)
    sched.repumpAll()
    store.rereplicate().then(n => { sched.metrics.rereplications += n }, err => { log.error('re-replication failed: %s', (err as Error).message) })
  })
  membership.addEventListener('membership:peer-alive', () => { sched.repumpAll() })
  submit = new SubmitProtocol(libp2p, {
    submit: async opts => sched.submit(opts),
    view: async id => sched.view(id),
    logs: id => sched.logsOf(id).map(l => ({ step: l.step, index: l.index, peer: l.peer, line: l.line, ts: l.ts })),
    announce: started => { sched.ingest(started) }
  }, logger.forComponent('dflow:submit'))
  const submitProtocol = submit

  // event-loop delay: what every timing on this peer suffers from when the process is busy
  const loopDelay = monitorEventLoopDelay({ resolution: 20 })

  return {
    store,
    pool,
    bus,
    membership,
    loader,
    scheduler,
    submit: submitProtocol,
    async start () {
      loopDelay.enable()
      await store.start()
      await bus.start()
      await sched.start()
      await membership.start()
      await submitProtocol.start()
    },
    async stop () {
      await submitProtocol.stop()
      await membership.stop()
      await sched.stop()
      await bus.stop()
      await pool.stop()
      await store.stop()
      loopDelay.disable()
    },
    routes (): Route[] {
      return [
        ...workflowRoutes(loader),
        ...requestRoutes({ self, scheduler: sched, submit: submitProtocol, membership }),
        ...storeRoutes(store, traffic?.()),
        { method: 'GET', path: '/v1/membership', handler: async () => membership.view() },
        {
          method: 'GET',
          path: '/v1/metrics/scheduler',
          handler: async () => ({
            ...sched.metrics,
            trackedRequests: sched.trackedRequests(),
            load: sched.load.snapshot(),
            events: bus.counters(),
            pool: pool.stats(),
            eventLoopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }
          })
        }
      ]
    }
  }
}
