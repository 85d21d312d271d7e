import '../util/polyfill.ts'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { noise } from '@libp2p/noise'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { ComponentLogger, Metrics, PrivateKey } from '@libp2p/interface'
import { EVENTS_TOPIC } from '../../protocols/events/constants.ts'
import { cheapLengthPrefixEnd } from './lp-decoder.ts'
import { freshXsalsa20Views } from './xsalsa20-memory.ts'
import { corkTcpWrites } from './tcp-cork.ts'
import { installEd25519KeyCache } from './ed25519-keys.ts'
import { installLazyYamuxWindowUpdates } from './yamux-window.ts'
import { boundDeliveryRecords, seenTtlMs } from './gossip-window.ts'
import { foldScoreIntoHeartbeat, restHeartbeatWhenQuiet } from './gossip-timers.ts'

installLazyYamuxWindowUpdates()


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
  /** The private network's pre-shared key (swarm key file bytes): only peers holding it can connect. */
  swarmKey?: Uint8Array
  /** Addresses other peers should dial (instead of the listen addresses), e.g. behind NAT or on 0.0.0.0. */
  announce?: string[]
  /**
   * Gossipsub peer scoring against invalid messages and IP colocation. On a one-machine network every peer
   * shares one IP, so colocation scoring is off there. @default false
   */
  scoring?: boolean
}

/**
 * What an invalid event costs its sender in gossipsub's score (P4): -10 per rejected message, squared, so a
 * few forgeries push a peer past the gossip (-10), publish (-50) and graylist (-80) thresholds. The other
 * topic terms are off: the events topic is bursty, and mesh-delivery quotas would punish quiet honest peers.
 */
const EVENTS_TOPIC_SCORE = {
  topicWeight: 1,
  timeInMeshWeight: 0,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 3600,
  firstMessageDeliveriesWeight: 0,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 2000,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 20,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: 0.5
}

/**
 * Composes the libp2p node every dflow peer runs: TCP + noise + yamux, identify, ping, a server-mode
 * Kademlia DHT that keeps loopback addresses (the default mapper strips them and the routing table stays
 * empty on a one-machine testnet), and gossipsub tuned for many peers on one IP.
 */
/** gossipsub's heartbeat at rest, in (fast) heartbeats, and how long nothing must happen before it slows down */
const GOSSIP_REST_HEARTBEATS = 5
const GOSSIP_QUIET_HEARTBEATS = 10

export async function createDflowLibp2p (opts: CreateLibp2pOptions): Promise<DflowLibp2p> {
  installEd25519KeyCache()
  cheapLengthPrefixEnd()
  freshXsalsa20Views()
  const heartbeatMs = opts.gossipHeartbeatMs ?? 1000
  const seenTTL = seenTtlMs(heartbeatMs)
  const peerDiscovery = (opts.bootstrap ?? []).length > 0
    ? [bootstrap({ list: opts.bootstrap ?? [], timeout: 0 })]
    : []
  const node = await createLibp2p({
    privateKey: opts.privateKey,
    start: false,
    logger: opts.logger,
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'], announce: opts.announce ?? [] },
    transports: [tcp()],
    connectionProtector: opts.swarmKey === undefined ? undefined : preSharedKey({ psk: opts.swarmKey }),
    connectionEncrypters: [noise()],
    // yamux pings every connection from both ends every 30 s by default: at rest that is traffic growing with the
    // number of connections (N-1 per peer once membership has met everyone). The first ping (at connect) still
    // measures the RTT that window growth needs; liveness comes from the membership's probes.
    streamMuxers: [yamux({ keepAliveInterval: 300_000 })],
    peerDiscovery,
    metrics: opts.metrics,
    connectionManager: {
      // a private network admits only key holders, so any of its addresses may connect as fast as loopback
      allow: opts.swarmKey === undefined ? ['/ip4/127.0.0.0/ipcidr/8'] : ['/ip4/0.0.0.0/ipcidr/0', '/ip6/::/ipcidr/0'],
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
        allowQueryWithZeroPeers: true,
        // kad-dht asks 10 peers at once on each of 10 disjoint paths: in a network of tens of peers a lookup asks
        // nearly all of them, and every answer's peers are pinged before they enter the routing table. Peers
        // starting together each run 2-3 lookups (self-query, table refresh, discovery), so that was most of a
        // 32-peer testnet's formation CPU; Kademlia's own 3 finds any peer in a few more round trips.
        alpha: 3,
        // a lookup queries peers until the k closest it has seen answered, on each disjoint path: with k = 20 on
        // 3 paths a lookup in a network of 32 asked (and connected to) nearly every peer, so every peer ended up
        // connected to every other. dflow networks are tens to hundreds of peers in one private network: 8 close
        // peers per bucket on one path still find any peer in a few round trips, and a provider record lives on 8
        // peers. 32 peers starting at once: 3.4 -> 2.5 s of CPU per peer with the probe fixes (scale.md).
        kBucketSize: DHT_K,
        disjointPaths: 1
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // 1 s is gossipsub's own default: at rest a heartbeat sends nothing, and a new subscriber is grafted at
        // once on SUBSCRIBE, so a shorter one only burns CPU on every peer
        heartbeatInterval: heartbeatMs,
        // how long a seen message is remembered: long enough for its last duplicate (gossip-window.ts)
        seenTTL,
        emitSelf: false,
        // IDONTWANT tells mesh peers not to forward a message this peer already has. A dflow publisher floods each
        // message to every subscriber it is connected to and relays leave those out (gossip-forward.ts), so the
        // duplicates IDONTWANT prevents are not sent anyway, and on a connected network every message cost one
        // IDONTWANT to each other mesh peer: two thirds of all gossip RPCs on 4 peers (profile of a fan)
        idontwantMinDataSize: Number.MAX_SAFE_INTEGER,
        // without it every duplicate copy of a message (a mesh of D peers forwards each one D-1 times) has its
        // signature checked before the seen-cache drops it; a profile of a 4-peer fan showed that as the largest
        // CPU cost of a step. The signature stands for the message: a forged copy fails verification and is
        // never cached, and a peer's own equivocations only hide its own second message.
        fastMsgIdFn: fastMessageId,
        scoreParams: opts.scoring === true
          ? { topics: { [EVENTS_TOPIC]: EVENTS_TOPIC_SCORE } }
          : { IPColocationFactorWeight: 0, topics: { [EVENTS_TOPIC]: EVENTS_TOPIC_SCORE } }
      })
    }
  })
  keepFewerClosePeers(node)
  corkTcpWrites(node)
  boundDeliveryRecords(node.services.pubsub, seenTTL)
  foldScoreIntoHeartbeat(node.services.pubsub, heartbeatMs)
  // 5 heartbeats apart at rest, fast again on any message, subscription, graft, prune or connection (gossip-timers.ts)
  restHeartbeatWhenQuiet(node.services.pubsub, node, { fastMs: heartbeatMs, restMs: GOSSIP_REST_HEARTBEATS * heartbeatMs, quietMs: GOSSIP_QUIET_HEARTBEATS * heartbeatMs })
  return node
}

/** Peers per DHT bucket, and the closest peers kept connected. */
export const DHT_K = 8

interface ClosestPeerTagger { peerSetSize?: number, refreshInterval?: number }

/**
 * How often kad-dht re-tags its closest peers (its default 5 s). It only tags what changed since the last look,
 * so at rest the look finds nothing, but it wakes the process: one of the few timers left on an idle peer.
 */
const CLOSE_PEER_TAG_INTERVAL_MS = 20_000

/**
 * kad-dht tags the 20 closest peers it has pinged KEEP_ALIVE (the connection manager redials them), and its
 * init does not pass the set size through: 20 standing connections per peer, each ~1.3 MiB and handshakes to
 * keep. The same k as the buckets is enough to answer lookups for our own neighbourhood. Set before start
 * (the set and the interval are made in start()); if a kad-dht upgrade moves the fields, the defaults stay and
 * nothing breaks. The tags only keep those connections up, so a newly close peer tagged up to 20 s later is fine.
 */
function keepFewerClosePeers (node: DflowLibp2p): void {
  const tagger = (node.services.dht as unknown as { routingTable?: { closestPeerTagger?: ClosestPeerTagger } }).routingTable?.closestPeerTagger
  if (tagger !== undefined && typeof tagger.peerSetSize === 'number') tagger.peerSetSize = DHT_K
  if (tagger !== undefined && typeof tagger.refreshInterval === 'number') tagger.refreshInterval = CLOSE_PEER_TAG_INTERVAL_MS
}

/** gossipsub's fast duplicate check: the message's signature (it covers from, seqno, topic and data). */
function fastMessageId (msg: { signature?: Uint8Array, from?: Uint8Array, seqno?: Uint8Array }): string {
  const sig = msg.signature
  if (sig !== undefined && sig.byteLength > 0) return Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64')
  // unsigned messages never pass our StrictSign validation; give each its own id so none is taken for a duplicate
  return `unsigned:${Math.random()}`
}
