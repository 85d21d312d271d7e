import { EVENTS_TOPIC } from '../../protocols/events/constants.ts'
import type { Route } from './types.ts'
import type { Peer } from '../peer.ts'
import type { PeerId } from '@libp2p/interface'

interface RoutingTableHolder {
  routingTable?: { kb?: { toIterable(): Iterable<{ peerId: PeerId }> } }
}

export interface PeerEntry {
  peerId: string
  multiaddrs: string[]
  /** an open connection exists now */
  connected: boolean
  /** present in the DHT routing table */
  inRoutingTable: boolean
  /** subscribed (as this peer sees it) to the events gossip topic */
  subscribed: boolean
  /** in this peer's gossipsub mesh for the events topic (it forwards every event there) */
  mesh: boolean
}

export interface PeersResponse {
  peers: PeerEntry[]
}

/** The union of DHT routing-table peers and connected peers, as this peer sees them. */
export async function listPeers (peer: Peer): Promise<PeerEntry[]> {
  const { libp2p } = peer
  const ids = new Map<string, PeerId>()
  const inTable = new Set<string>()
  // the KadDHT interface hides the routing table; the single (non-Amino) DHT we compose exposes it
  const table = (libp2p.services.dht as unknown as RoutingTableHolder).routingTable
  for (const entry of table?.kb?.toIterable() ?? []) {
    ids.set(entry.peerId.toString(), entry.peerId)
    inTable.add(entry.peerId.toString())
  }
  const connected = new Set<string>()
  for (const conn of libp2p.getConnections()) {
    if (conn.status !== 'open') continue
    ids.set(conn.remotePeer.toString(), conn.remotePeer)
    connected.add(conn.remotePeer.toString())
  }
  const subscribed = new Set(libp2p.services.pubsub.getSubscribers(EVENTS_TOPIC).map(String))
  // the GossipSub interface hides the mesh; the implementation we compose has getMeshPeers
  const pubsub = libp2p.services.pubsub as unknown as { getMeshPeers?: (topic: string) => string[] }
  const mesh = new Set(pubsub.getMeshPeers?.(EVENTS_TOPIC) ?? [])
  const out: PeerEntry[] = []
  for (const [id, peerId] of ids) {
    let multiaddrs: string[] = []
    try {
      const stored = await libp2p.peerStore.get(peerId)
      multiaddrs = stored.addresses.map(a => a.multiaddr.toString())
    } catch {
      multiaddrs = libp2p.getConnections(peerId).map(c => c.remoteAddr.toString())
    }
    out.push({ peerId: id, multiaddrs, connected: connected.has(id), inRoutingTable: inTable.has(id), subscribed: subscribed.has(id), mesh: mesh.has(id) })
  }
  return out.sort((a, b) => a.peerId.localeCompare(b.peerId))
}

export function peersRoutes (peer: Peer): Route[] {
  return [{
    method: 'GET',
    path: '/v1/peers',
    handler: async (): Promise<PeersResponse> => ({ peers: await listPeers(peer) })
  }]
}
