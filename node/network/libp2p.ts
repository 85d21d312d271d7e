import '../util/polyfill.ts'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { noise } from '@libp2p/noise'
import { ping, type Ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { ComponentLogger, Metrics, PrivateKey } from '@libp2p/interface'


/** The DHT runs under its own protocol id so a dflow network never merges with the public IPFS DHT. */
export const DHT_PROTOCOL = '/dflow/kad/1.0.0'

export type DflowLibp2pServices = {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type DflowLibp2p = Libp2p<DflowLibp2pServices>

export interface CreateLibp2pOptions {
  privateKey: PrivateKey
  /** @default ['/ip4/127.0.0.1/tcp/0'] */
  listen?: string[]
  bootstrap?: string[]
  /** Connection-level byte counters (see node/metrics). */
  metrics?: (components: any) => Metrics
  logger?: ComponentLogger
  /** Gossipsub heartbeat: mesh upkeep and gossip of recent message ids. @default 1000 */
  gossipHeartbeatMs?: number
}

/**
 * Composes the libp2p node every dflow peer runs: TCP + noise + yamux, identify, ping, a server-mode
 * Kademlia DHT that keeps loopback addresses (the default mapper strips them and the routing table stays
 * empty on a one-machine testnet), and gossipsub tuned for many peers on one IP.
 */
export async function createDflowLibp2p (opts: CreateLibp2pOptions): Promise<DflowLibp2p> {
  const peerDiscovery = (opts.bootstrap ?? []).length > 0
    ? [bootstrap({ list: opts.bootstrap ?? [], timeout: 0 })]
    : []
  return createLibp2p({
    privateKey: opts.privateKey,
    start: false,
    logger: opts.logger,
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    metrics: opts.metrics,
    connectionManager: {
      allow: ['/ip4/127.0.0.0/ipcidr/8'],
      maxIncomingPendingConnections: 256,
      inboundConnectionThreshold: 1000,
      dialTimeout: 10_000
    },
    // the connection monitor pings every connection every 10 s: all-to-all traffic that grows with N. Liveness
    // comes from the probe membership (node/dscheduler/membership.ts), which costs O(1) per peer per period.
    connectionMonitor: { enabled: false },
    services: {
      // 5 s (the default) is too short when many peers start at once on a busy machine, and a failed identify
      // leaves the peer out of the DHT routing table until some later connection
      identify: identify({ timeout: 20_000 }),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        initialQuerySelfInterval: 200,
        allowQueryWithZeroPeers: true
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // 1 s is gossipsub's own default: at rest a heartbeat sends nothing, and a new subscriber is grafted at
        // once on SUBSCRIBE, so a shorter one only burns CPU on every peer
        heartbeatInterval: opts.gossipHeartbeatMs ?? 1000,
        emitSelf: false,
        scoreParams: { IPColocationFactorWeight: 0 }
      })
    }
  })
}
