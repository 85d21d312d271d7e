import type { ManifestPeer } from './manifest.ts'
import type { PeersResponse } from '../node/api/peers.ts'
import { apiHeaders } from './clients.ts'

export interface MeshProgress {
  /** peers whose routing table and subscriber list hold every other peer */
  ready: number
  total: number
  lagging: LaggingPeer[]
}

export interface LaggingPeer {
  index: number
  peerId: string
  /** indices of peers missing from its routing table */
  notInRoutingTable: number[]
  /** indices of peers it does not see subscribed to the events topic */
  notSubscribed: number[]
  /** set when its API did not answer */
  unreachable?: string
}

export class TestnetTimeoutError extends Error {
  static readonly NAME = 'TestnetTimeoutError'
  readonly lagging: LaggingPeer[]
  constructor (message: string, lagging: LaggingPeer[]) {
    super(message)
    this.name = TestnetTimeoutError.NAME
    this.lagging = lagging
  }
}

export function describeLagging (lagging: LaggingPeer[]): string {
  return lagging.map(l => {
    if (l.unreachable != null) return `peer ${l.index} (${l.peerId}): API unreachable (${l.unreachable})`
    const parts: string[] = []
    if (l.notInRoutingTable.length > 0) parts.push(`routing table lacks peers ${l.notInRoutingTable.join(', ')}`)
    if (l.notSubscribed.length > 0) parts.push(`does not see peers ${l.notSubscribed.join(', ')} subscribed`)
    return `peer ${l.index} (${l.peerId}): ${parts.join('; ')}`
  }).join('\n')
}

async function check (peer: ManifestPeer, others: ManifestPeer[]): Promise<LaggingPeer | undefined> {
  let body: PeersResponse
  try {
    const res = await fetch(`${peer.api}/v1/peers`, { headers: apiHeaders(peer), signal: AbortSignal.timeout(3000) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    body = await res.json() as PeersResponse
  } catch (err) {
    return { index: peer.index, peerId: peer.peerId, notInRoutingTable: [], notSubscribed: [], unreachable: (err as Error).message }
  }
  const byId = new Map(body.peers.map(p => [p.peerId, p]))
  const notInRoutingTable = others.filter(o => byId.get(o.peerId)?.inRoutingTable !== true).map(o => o.index)
  const notSubscribed = others.filter(o => byId.get(o.peerId)?.subscribed !== true).map(o => o.index)
  if (notInRoutingTable.length === 0 && notSubscribed.length === 0) return undefined
  return { index: peer.index, peerId: peer.peerId, notInRoutingTable, notSubscribed }
}

export interface WaitForMeshOptions {
  timeoutMs: number
  intervalMs?: number
  onProgress?: (p: MeshProgress) => void
  signal?: AbortSignal
}

/**
 * Polls each peer's /v1/peers until every routing table and every subscriber list holds all the others,
 * so the first event published afterwards reaches everyone.
 */
export async function waitForMesh (peers: ManifestPeer[], opts: WaitForMeshOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs
  while (true) {
    opts.signal?.throwIfAborted()
    const results = await Promise.all(peers.map(async p => check(p, peers.filter(o => o !== p))))
    const lagging = results.filter((r): r is LaggingPeer => r != null)
    opts.onProgress?.({ ready: peers.length - lagging.length, total: peers.length, lagging })
    if (lagging.length === 0) return
    if (Date.now() > deadline) {
      throw new TestnetTimeoutError(`the testnet did not form within ${opts.timeoutMs} ms; lagging:\n${describeLagging(lagging)}`, lagging)
    }
    await new Promise(resolve => setTimeout(resolve, opts.intervalMs ?? 250))
  }
}
