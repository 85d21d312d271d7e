import type { ManifestPeer } from './manifest.ts'
import type { PeersResponse } from '../node/api/peers.ts'
import { apiHeaders } from './clients.ts'
import type { MembershipView } from '../node/dscheduler/membership.ts'
import { MIN_MEMBER_LINKS } from '../node/dscheduler/membership-types.ts'

/**
 * What a formed network needs, and no more (a full mesh of routing tables grows with N² and real networks
 * never have one):
 * - every peer connected to enough others (min(N-1, MIN_CONNECTED));
 * - every peer's membership lists every other as alive, at the incarnation that peer reports for itself
 *   (so placement ranks the same peers everywhere, and a restarted peer's new incarnation is known);
 * - the gossip mesh of the events topic strongly connected (each peer forwards every event to its mesh peers,
 *   so an event published anywhere reaches everyone), and every peer subscribed as its mesh peers see it;
 * - the DHT able to find any peer: the graph "q is in p's routing table" strongly connected, so a lookup
 *   started anywhere can walk to any peer.
 */
/** the membership keeps this many members linked (membership.ts keepLinks) */
export const MIN_CONNECTED = MIN_MEMBER_LINKS

export interface MeshProgress {
  /** peers that meet their own conditions (connections, membership, mesh) */
  ready: number
  total: number
  lagging: LaggingPeer[]
  /** conditions of the whole network not met yet (mesh or DHT graph not strongly connected) */
  network: string[]
}

export interface LaggingPeer {
  index: number
  peerId: string
  /** open connections it has, when fewer than needed */
  connected?: number
  /** indices of peers its membership does not list alive at their current incarnation */
  notMember: number[]
  /** set when it has no peer in its gossip mesh */
  noMesh?: boolean
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

export function describeLagging (lagging: LaggingPeer[], network: string[] = []): string {
  return [...lagging.map(l => {
    if (l.unreachable != null) return `peer ${l.index} (${l.peerId}): API unreachable (${l.unreachable})`
    const parts: string[] = []
    if (l.connected !== undefined) parts.push(`connected to only ${l.connected} peers`)
    if (l.notMember.length > 0) parts.push(`membership lacks peers ${l.notMember.join(', ')}`)
    if (l.noMesh === true) parts.push('no gossip mesh peer')
    return `peer ${l.index} (${l.peerId}): ${parts.join('; ')}`
  }), ...network].join('\n')
}

interface Observed {
  peer: ManifestPeer
  peers?: PeersResponse['peers']
  membership?: MembershipView
  error?: string
}

async function observe (peer: ManifestPeer): Promise<Observed> {
  try {
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${peer.api}${path}`, { headers: apiHeaders(peer), signal: AbortSignal.timeout(3000) })
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
      return await res.json() as T
    }
    const [peers, membership] = await Promise.all([get<PeersResponse>('/v1/peers'), get<MembershipView>('/v1/membership')])
    return { peer, peers: peers.peers, membership }
  } catch (err) {
    return { peer, error: (err as Error).message }
  }
}

/** Whether every node reaches every other along `edges` (directed). */
function stronglyConnected (nodes: string[], edges: Map<string, Set<string>>): boolean {
  if (nodes.length <= 1) return true
  const reach = (from: string, next: (n: string) => Iterable<string>): number => {
    const seen = new Set([from])
    const todo = [from]
    while (todo.length > 0) {
      for (const m of next(todo.pop() as string)) if (!seen.has(m) && nodes.includes(m)) { seen.add(m); todo.push(m) }
    }
    return seen.size
  }
  const reverse = new Map<string, Set<string>>()
  for (const [a, bs] of edges) for (const b of bs) reverse.set(b, (reverse.get(b) ?? new Set()).add(a))
  return reach(nodes[0], n => edges.get(n) ?? []) === nodes.length && reach(nodes[0], n => reverse.get(n) ?? []) === nodes.length
}

/** One look at the network: which peers lag, and which network-wide conditions fail. */
export async function checkNetwork (peers: ManifestPeer[]): Promise<MeshProgress> {
  const seen = await Promise.all(peers.map(observe))
  const ids = peers.map(p => p.peerId)
  const incarnation = new Map(seen.filter(o => o.membership !== undefined).map(o => [o.peer.peerId, o.membership?.incarnation]))
  const mesh = new Map<string, Set<string>>()
  const table = new Map<string, Set<string>>()
  const lagging: LaggingPeer[] = []
  const need = Math.min(peers.length - 1, MIN_CONNECTED)
  for (const o of seen) {
    const { peer } = o
    if (o.peers === undefined || o.membership === undefined) {
      lagging.push({ index: peer.index, peerId: peer.peerId, notMember: [], unreachable: o.error })
      continue
    }
    const list = o.peers.filter(e => ids.includes(e.peerId))
    mesh.set(peer.peerId, new Set(list.filter(e => e.mesh && e.subscribed).map(e => e.peerId)))
    table.set(peer.peerId, new Set(list.filter(e => e.inRoutingTable).map(e => e.peerId)))
    const members = new Map(o.membership.members.map(m => [m.peerId, m]))
    const notMember = peers.filter(q => q !== peer).filter(q => {
      const m = members.get(q.peerId)
      return m?.state !== 'alive' || m.incarnation !== incarnation.get(q.peerId)
    }).map(q => q.index)
    const connected = list.filter(e => e.connected).length
    const noMesh = peers.length > 1 && (mesh.get(peer.peerId)?.size ?? 0) === 0
    if (notMember.length > 0 || connected < need || noMesh) {
      lagging.push({ index: peer.index, peerId: peer.peerId, notMember, connected: connected < need ? connected : undefined, noMesh: noMesh ? true : undefined })
    }
  }
  const network: string[] = []
  if (lagging.length === 0) {
    if (!stronglyConnected(ids, mesh)) network.push('the gossip mesh does not connect every peer to every other yet')
    if (!stronglyConnected(ids, table)) network.push('the DHT routing tables do not lead from every peer to every other yet')
  }
  return { ready: peers.length - lagging.length, total: peers.length, lagging, network }
}

export interface WaitForMeshOptions {
  timeoutMs: number
  /** @default 250 ms, more for large networks (every poll asks every peer) */
  intervalMs?: number
  onProgress?: (p: MeshProgress) => void
  signal?: AbortSignal
}

/** Polls every peer until the network has formed (see above), so the first event published afterwards reaches everyone. */
export async function waitForMesh (peers: ManifestPeer[], opts: WaitForMeshOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs
  const interval = opts.intervalMs ?? Math.max(250, peers.length * 40)
  while (true) {
    opts.signal?.throwIfAborted()
    const progress = await checkNetwork(peers)
    opts.onProgress?.(progress)
    if (progress.lagging.length === 0 && progress.network.length === 0) return
    if (Date.now() > deadline) {
      throw new TestnetTimeoutError(`the testnet did not form within ${opts.timeoutMs} ms; lagging:\n${describeLagging(progress.lagging, progress.network)}`, progress.lagging)
    }
    await new Promise(resolve => setTimeout(resolve, interval))
  }
}
