import { peerIdFromString } from '@libp2p/peer-id'
import type { Route } from './types.ts'
import type { PeerStatusInfo } from '../../protocols/status/index.ts'
import type { PeerId } from '@libp2p/interface'

/** One peer as the network view shows it. Figures only the peer itself knows are absent when it did not answer. */
export interface NetworkPeer {
  peerId: string
  /** this is the peer that answered */
  self: boolean
  /** alive as this peer's membership sees it */
  alive: boolean
  /** an open connection between this peer and it */
  connected: boolean
  status?: PeerStatusInfo
  /** why there is no status (not asked because dead, timeout, refused) */
  statusError?: string
}

export interface NetworkResponse {
  self: string
  at: number
  peers: NetworkPeer[]
}

export interface NetworkComponents {
  self: string
  /** every peer this one has heard of (alive or dead since) */
  known: () => Iterable<string>
  isLive: (peer: string) => boolean
  connected: (peer: string) => boolean
  local: () => PeerStatusInfo
  ask: (peer: PeerId, signal: AbortSignal) => Promise<PeerStatusInfo>
}

/** GET /v1/network: every known peer, alive or dead, with the status the live ones report (asked now, in parallel). */
export function networkRoutes (c: NetworkComponents): Route[] {
  return [{
    method: 'GET',
    path: '/v1/network',
    handler: async (req): Promise<NetworkResponse> => {
      const ids = new Set([c.self, ...c.known()])
      const controller = new AbortController()
      req.raw.once('close', () => { controller.abort() })
      const peers = await Promise.all([...ids].map(async (peerId): Promise<NetworkPeer> => {
        const self = peerId === c.self
        const alive = self || c.isLive(peerId)
        const entry: NetworkPeer = { peerId, self, alive, connected: !self && c.connected(peerId) }
        if (self) return { ...entry, status: c.local() }
        if (!alive) return { ...entry, statusError: 'not asked: presumed dead' }
        try {
          return { ...entry, status: await c.ask(peerIdFromString(peerId), controller.signal) }
        } catch (err) {
          return { ...entry, statusError: (err as Error).message }
        }
      }))
      peers.sort((a, b) => a.peerId.localeCompare(b.peerId))
      return { self: c.self, at: Date.now(), peers }
    }
  }]
}
