import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { join } from 'node:path'
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
import { HandedOver, secureRequest } from './dscheduler/secure.ts'
import { authorizeRequest, type AuthorizePolicy } from './dscheduler/authorize.ts'
import { LoggedBus } from './dscheduler/logged-bus.ts'
import { RequestSync } from './dscheduler/request-sync.ts'
import { WorkLoopDelay } from './util/loop-delay.ts'

/** How long anti-entropy keeps fetching the missing results of a request that finished ok here (settle.ts). */
const SETTLE_FOLLOW_MS = 60_000

/** The dflow parts of a peer, wired together: DStore, the worker pool, gossip, membership, DScheduler, submit. */
export interface DflowServices extends PeerService {
  store: DStoreService
  pool: WorkerPool
  bus: GossipBus
  membership: ProbeMembership
  loader: BundleLoader
  scheduler: DScheduler
  submit: SubmitProtocol
  /** per-request event logs, /dflow/sync/1.0.0 and anti-entropy */
  sync: RequestSync
}

export function dflowServices (peer: Peer, traffic?: () => TrafficMetrics | undefined): DflowServices {
  const { config, libp2p, logger } = peer
  const self = peer.peerId.toString()
  const log = logger.forComponent('dflow:services')
  let membership: ProbeMembership | undefined
  // peers of the (private) network are authorized by default: this one, live ones, connected ones
  const policy: AuthorizePolicy = {
    authorized: peer.authorizedSubmitters,
    isNetworkPeer: id => {
      if (id === self || membership?.isLive(id) === true) return true
      try { return libp2p.getConnections(peerIdFromString(id)).length > 0 } catch { return false }
    }
  }
  const bus = new GossipBus(libp2p, logger.forComponent('dflow:events'), { dropEvents: config.dropEvents, seed: self, policy, privateKey: peer.privateKey })
  membership = new ProbeMembership(self, libp2p, { probeIntervalMs: config.heartbeatMs, failureTimeoutMs: config.failureTimeoutMs }, logger.forComponent('dflow:membership'))
  const members = membership
  let scheduler: DScheduler | undefined
  let loggedBus: LoggedBus | undefined
  // anti-entropy: what a sync exchange brings goes to the scheduler through the logged bus (once per event)
  const sync = new RequestSync({
    self,
    libp2p,
    livePeers: () => membership.live(),
    membership,
    logger,
    // an event relayed by sync skips gossip's validator: the same authorization before the scheduler sees it
    ingest: (entry, event) => bus.authorize(event) === TopicValidatorResult.Accept && (loggedBus?.ingest(event, entry) ?? false)
  }, { intervalMs: config.syncIntervalMs, retentionMs: config.retentionMs })
  const schedulerBus = loggedBus = new LoggedBus(bus, sync.logs)
  const store = new DStoreService({
    libp2p,
    logger,
    config: {
      chunkSize: config.chunkSize,
      replicas: config.replicas,
      inlineLimit: config.inlineLimit,
      capacity: config.storeCapacity,
      retentionMs: config.retentionMs,
      dataDir: config.dataDir,
      sharedStore: !config.noSharedStore,
      networkId: networkIdOf(config.swarmKey)
    },
    livePeers: () => members.live().flatMap(p => p === self ? [] : [members.id(p)]),
    acceptPush: meta => scheduler?.wantsPush(meta.request) ?? false
  })
  const limits = { maxMemoryMb: config.maxMemoryMb, maxTimeoutMs: config.maxTimeoutMs, maxRetries: config.maxRetries }
  const pool = new WorkerPool({
    slots: config.slots,
    idleMs: config.idleInstanceMs,
    isolation: config.isolation,
    stemCells: config.stemCells,
    // the peer's own 0700 code cache; without a data dir, a private temp directory the pool removes at stop
    codeDir: config.dataDir === undefined ? undefined : join(config.dataDir, 'code'),
    limits,
    logger
  })
  const loader = new BundleLoader(store, limits)
  let submit: SubmitProtocol | undefined
  const handedOver = new HandedOver()
  scheduler = new DScheduler({
    self,
    bus: schedulerBus,
    store,
    pool,
    loader,
    logger,
    membership: members,
    secureRequest: async started => { if (submit !== undefined) await secureRequest(started, { self, store, membership: members, submit, log, handedOver }) }
  }, { slots: config.slots, retentionMs: config.retentionMs, leaseMs: config.leaseMs, recordsDir: config.dataDir === undefined ? '' : join(config.dataDir, 'requests') })
  const sched = scheduler
  sched.addEventListener('scheduler:forgotten', ev => { bus.forget(ev.detail) })
  // a request over here whose results this peer has not all heard: sync keeps fetching them (settle.ts), a minute at most
  sched.addEventListener('scheduler:request-settling', ev => { sync.logs.follow(ev.detail, SETTLE_FOLLOW_MS) })
  sched.addEventListener('scheduler:request-settled', ev => { sync.logs.follow(ev.detail, 0) })
  // an own runner event nobody elsewhere waits on shares its gossip message with the ones after it
  // (DFLOW_EVENT_SLACK=0 turns it off, for A/B runs)
  if (process.env.DFLOW_EVENT_SLACK !== '0') bus.slack = (ev, memo) => sched.sendSlack(ev, memo)
  members.addEventListener('membership:peer-dead', ev => {
    log('peer %s presumed dead; re-examining its claims and re-replicating', ev.detail)
    // a peer that comes back may have lost what it held: hand it everything again
    handedOver.forget(ev.detail)
    sched.repumpAll()
    store.rereplicate().then(n => { sched.metrics.rereplications += n }, err => { log.error('re-replication failed: %s', (err as Error).message) })
  })
  members.addEventListener('membership:peer-alive', ev => { handedOver.forget(ev.detail); sched.repumpAll() })
  submit = new SubmitProtocol(libp2p, {
    submit: async opts => sched.submit(opts),
    view: async id => sched.view(id),
    logs: id => sched.logsOf(id).map(l => ({ step: l.step, index: l.index, peer: l.peer, line: l.line, ts: l.ts })),
    announce: started => {
      // a hand-over skips gossip's validator: the same check, before any of the request's code is fetched;
      // then through the logged bus, so it is logged like any event (and applied once)
      authorizeRequest(started, policy)
      bus.remember(started)
      schedulerBus.ingest(started)
    }
  }, logger.forComponent('dflow:submit'))
  const submitProtocol = submit

  // event-loop delay: what every timing on this peer suffers from when the process is busy; sampled only
  // while there is work (every scheduler event counts), so an idle peer is not woken 50 times a second
  const loopDelay = new WorkLoopDelay({ busy: () => sync.logs.hasActive() || pool.stats().busy > 0 })
  const onSchedulerEvent = (): void => { loopDelay.work() }

  return {
    store,
    pool,
    bus,
    membership: members,
    loader,
    scheduler,
    submit: submitProtocol,
    sync,
    async start () {
      sched.addEventListener('scheduler:event', onSchedulerEvent)
      await store.start()
      await bus.start()
      await sched.start()
      await members.start()
      await submitProtocol.start()
      await sync.start()
    },
    async stop () {
      await sync.stop()
      await submitProtocol.stop()
      await members.stop()
      await sched.stop()
      await bus.stop()
      await pool.stop()
      await store.stop()
      sched.removeEventListener('scheduler:event', onSchedulerEvent)
      loopDelay.stop()
    },
    routes (): Route[] {
      return [
        ...workflowRoutes(loader, { known: cid => sched.list().some(r => r.workflow === cid) }),
        ...requestRoutes({ self, scheduler: sched, submit: submitProtocol, membership: members, bus, policy, chunkSize: config.chunkSize }),
        ...storeRoutes(store, traffic?.()),
        { method: 'GET', path: '/v1/membership', handler: async () => membership.view() },
        {
          method: 'GET',
          path: '/v1/metrics/scheduler',
          handler: async () => ({
            ...sched.metrics,
            trackedRequests: sched.trackedRequests(),
            load: sched.load.snapshot(),
            // what placement prices a hand-off to another peer at now (learned from hand-offs, at least the floor)
            hopMs: sched.history.hopMs(sched.init.hopMs),
            events: schedulerBus.counters(),
            validation: bus.validation,
            sync: sync.metrics(),
            pool: pool.stats(),
            eventLoopDelayMs: { p50: loopDelay.histogram.percentile(50) / 1e6, p99: loopDelay.histogram.percentile(99) / 1e6, max: loopDelay.histogram.max / 1e6, sampling: loopDelay.active }
          })
        }
      ]
    }
  }
}

/**
 * Separates private networks in the same-host shared store: a hash of the swarm key's contents (peers of
 * one network may hold copies of the key at different paths), 'default' for the open loopback network.
 */
function networkIdOf (swarmKeyFile: string | undefined): string {
  if (swarmKeyFile === undefined) return 'default'
  try {
    return 'psk:' + createHash('sha256').update(readFileSync(swarmKeyFile)).digest('hex')
  } catch {
    return 'psk-file:' + swarmKeyFile
  }
}
