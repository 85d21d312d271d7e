import { readFileSync } from 'node:fs'
import type { Route } from './types.ts'
import type { Peer } from '../peer.ts'

/** The package version, read once from package.json. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

export interface HealthResponse {
  peerId: string
  multiaddrs: string[]
  uptimeMs: number
  version: string
  /** DStore's chunk size: a client computes its inputs' CIDs with it to sign a submission */
  chunkSize: number
  /** whether a swarm key keeps this peer's network private */
  privateNetwork: boolean
}

export function healthRoutes (peer: Peer): Route[] {
  return [{
    method: 'GET',
    path: '/v1/health',
    handler: async (): Promise<HealthResponse> => ({
      peerId: peer.peerId.toString(),
      multiaddrs: peer.libp2p.getMultiaddrs().map(String),
      uptimeMs: peer.startedAt > 0 ? Date.now() - peer.startedAt : 0,
      version: VERSION,
      chunkSize: peer.config.chunkSize,
      privateNetwork: peer.privateNetwork
    })
  }]
}
