import './util/polyfill.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { EVENTS_TOPIC } from '../protocols/events/constants.ts'
import { healthRoutes } from './api/health.ts'
import { peersRoutes } from './api/peers.ts'
import { ApiServer } from './api/server.ts'
import { ConfigError, resolveConfig, type PeerConfig } from './config.ts'
import { startDiscovery } from './discovery.ts'
import { loadOrCreateKey, loadSwarmKey } from './keys.ts'
import { loadAuthorizedSubmitters } from './auth/submitters.ts'
import { dflowLogger } from './util/log.ts'
import { createDflowLibp2p, type CreateLibp2pOptions, type DflowLibp2p } from './network/libp2p.ts'
import type { Route } from './api/types.ts'
import type { ComponentLogger, Logger, PeerId, PrivateKey } from '@libp2p/interface'

/** A part of the peer (dstore, dscheduler, executor...): started after libp2p, before the API; stopped in reverse. */
export interface PeerService {
  start(): Promise<void>
  stop(): Promise<void>
  routes?(): Route[]
}

export type PeerServiceFactory = (peer: Peer) => PeerService

export interface CreatePeerOptions {
  services?: PeerServiceFactory[]
  /** connection-level byte counters for libp2p (see node/metrics/traffic.ts) */
  metrics?: CreateLibp2pOptions['metrics']
}

export interface Peer {
  readonly config: PeerConfig
  readonly libp2p: DflowLibp2p
  readonly peerId: PeerId
  readonly api: ApiServer
  /** prefixed with this peer's id, so logs of many in-process peers can be told apart */
  readonly logger: ComponentLogger
  /** epoch ms of the last successful start(), 0 before */
  readonly startedAt: number
  /** ids from --authorized-submitters (peers of the network are authorized besides them) */
  readonly authorizedSubmitters: ReadonlySet<string>
  /** true when a swarm key keeps the network private */
  readonly privateNetwork: boolean
  /** the peer's identity key (its events are signed with it) */
  readonly privateKey: PrivateKey
  start(): Promise<void>
  stop(): Promise<void>
}

/** Listening on an address failed (port in use, address not available). */
export class ListenError extends Error {
  static readonly NAME = 'ListenError'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = ListenError.NAME
  }
}

/** A non-loopback address was asked for without a swarm key. */
export class InsecureAddressError extends Error {
  static readonly NAME = 'InsecureAddressError'
  constructor (message: string) {
    super(message)
    this.name = InsecureAddressError.NAME
  }
}

export function isLoopbackMultiaddr (ma: string): boolean {
  const components = multiaddr(ma).getComponents()
  const host = components[0]
  if (host == null) return false
  if (host.name === 'ip4') return host.value?.startsWith('127.') === true
  if (host.name === 'ip6') return host.value === '::1'
  return false
}

function isLoopbackHost (host: string): boolean {
  return host.startsWith('127.') || host === '::1' || host === 'localhost'
}

/** The non-loopback addresses of a config (listen, announce, API host). */
export function publicAddresses (config: PeerConfig): string[] {
  const publicAddrs: string[] = []
  for (const [key, list] of [['listen', config.listen], ['announce', config.announce]] as const) {
    for (const ma of list) {
      let loopback: boolean
      try {
        loopback = isLoopbackMultiaddr(ma)
      } catch (err) {
        throw new ConfigError(key, `invalid ${key} multiaddr ${JSON.stringify(ma)}: ${(err as Error).message}`)
      }
      if (!loopback) publicAddrs.push(ma)
    }
  }
  if (!isLoopbackHost(config.apiHost)) publicAddrs.push(`api host ${config.apiHost}`)
  return publicAddrs
}

/** Off loopback, only a private network keeps strangers from connecting (and so from running code). */
function checkAddresses (config: PeerConfig, log: Logger): void {
  const publicAddrs = publicAddresses(config)
  if (publicAddrs.length === 0) return
  if (config.swarmKey === undefined) {
    throw new InsecureAddressError(`refusing non-loopback address ${publicAddrs.join(', ')} without a swarm key: whoever could connect could run code on this peer. Make a key once with \`dflow key swarm swarm.key\`, copy it to every machine, and pass --swarm-key swarm.key`)
  }
  log('non-loopback addresses %s, private network by swarm key %s', publicAddrs.join(', '), config.swarmKey)
}

/** libp2p's listen error is a multi-line stack dump; keep the address and the reason. */
function describeListenFailure (listen: string[], err: unknown): string {
  const message = (err as Error)?.message ?? String(err)
  const failures = [...message.matchAll(/(\/\S+): Error: listen (E[A-Z]+)/g)]
  if (failures.length === 0) return `cannot start libp2p on ${listen.join(', ')}: ${message}`
  const reasons: Record<string, string> = { EADDRINUSE: 'port already in use', EADDRNOTAVAIL: 'address not available here', EACCES: 'permission denied' }
  return failures.map(m => `cannot listen on ${m[1]}: ${reasons[m[2]] ?? m[2]}`).join('; ')
}

class DflowPeer implements Peer {
  readonly config: PeerConfig
  readonly libp2p: DflowLibp2p
  readonly peerId: PeerId
  readonly api: ApiServer
  readonly logger: ComponentLogger
  readonly authorizedSubmitters: ReadonlySet<string>
  readonly privateNetwork: boolean
  readonly privateKey: PrivateKey
  startedAt = 0
  private readonly services: PeerService[] = []
  private readonly log: Logger
  private running = false
  private started: Array<() => Promise<void>> = []

  constructor (config: PeerConfig, libp2p: DflowLibp2p, logger: ComponentLogger, authorized: ReadonlySet<string>, privateKey: PrivateKey) {
    this.config = config
    this.privateKey = privateKey
    this.libp2p = libp2p
    this.peerId = libp2p.peerId
    this.logger = logger
    this.authorizedSubmitters = authorized
    this.privateNetwork = config.swarmKey !== undefined
    this.log = logger.forComponent('dflow:peer')
    this.api = new ApiServer({ host: config.apiHost, port: config.apiPort, logger, dataDir: config.dataDir })
  }

  addServices (factories: PeerServiceFactory[]): void {
    this.api.addRoutes([...healthRoutes(this), ...peersRoutes(this)])
    for (const factory of factories) {
      const service = factory(this)
      this.services.push(service)
      if (service.routes != null) this.api.addRoutes(service.routes())
    }
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      try {
        await this.libp2p.start()
      } catch (err) {
        try { await this.libp2p.stop() } catch {}
        throw new ListenError(describeListenFailure(this.config.listen, err), { cause: err })
      }
      this.started.push(async () => { await this.libp2p.stop() })
      // subscribe before anything else so testnet readiness (subscriber lists) reflects a usable peer
      this.libp2p.services.pubsub.subscribe(EVENTS_TOPIC)
      for (const service of this.services) {
        await service.start()
        this.started.push(async () => { await service.stop() })
      }
      await this.api.start()
      this.started.push(async () => { await this.api.stop() })
      const stopDiscovery = startDiscovery(this.libp2p, { bootstrap: this.config.bootstrap, log: this.logger.forComponent('dflow:discovery') })
      this.started.push(async () => { stopDiscovery() })
      this.startedAt = Date.now()
      this.log('started %p on %s, api %s', this.peerId, this.libp2p.getMultiaddrs().join(' '), this.api.url)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    const stops = this.started.reverse()
    this.started = []
    let firstError: unknown
    for (const stop of stops) {
      try { await stop() } catch (err) {
        this.log.error('stop failed: %e', err)
        firstError ??= err
      }
    }
    this.startedAt = 0
    if (firstError != null) throw firstError
  }
}

/** Builds a peer (not started): identity from the data dir, the libp2p node, the API and the given services. */
export async function createPeer (config: PeerConfig, opts: CreatePeerOptions = {}): Promise<Peer> {
  const full = resolveConfig(config)
  const privateKey = await loadOrCreateKey(full.dataDir)
  const logger = dflowLogger({ peer: peerIdFromPrivateKey(privateKey).toString(), format: full.logFormat })
  checkAddresses(full, logger.forComponent('dflow:peer'))
  const swarmKey = full.swarmKey === undefined ? undefined : await loadSwarmKey(full.swarmKey)
  const authorized = full.authorizedSubmitters === undefined ? new Set<string>() : await loadAuthorizedSubmitters(full.authorizedSubmitters)
  const libp2p = await createDflowLibp2p({
    privateKey,
    swarmKey,
    announce: full.announce,
    scoring: publicAddresses(full).length > 0,
    listen: full.listen,
    bootstrap: full.bootstrap,
    logger,
    gossipHeartbeatMs: full.gossipHeartbeatMs,
    metrics: opts.metrics
  })
  const peer = new DflowPeer(full, libp2p, logger, authorized, privateKey)
  peer.addServices(opts.services ?? [])
  return peer
}
