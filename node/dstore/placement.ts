import { createHash } from 'node:crypto'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

function sha256 (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

/** Kademlia key of a value: sha256 of its multihash, as kad-dht computes it (so placement and DHT agree). */
export function valueKey (cid: CID): Uint8Array {
  return sha256(cid.multihash.bytes)
}

/** Kademlia key of a peer: sha256 of its id's multihash bytes, as kad-dht computes it. */
export function peerKey (peer: PeerId): Uint8Array {
  return sha256(peer.toMultihash().bytes)
}

function compareDistance (a: Uint8Array, b: Uint8Array, target: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const da = a[i] ^ target[i]
    const db = b[i] ^ target[i]
    if (da !== db) return da - db
  }
  return 0
}

/**
 * The `n` peers whose keys are closest to the value's key by XOR distance (duplicates removed).
 * Deterministic: every peer that sees the same peer set picks the same holders.
 */
export function closestPeers (cid: CID, peers: Iterable<PeerId>, n: number): PeerId[] {
  const target = valueKey(cid)
  const seen = new Map<string, { peer: PeerId, key: Uint8Array }>()
  for (const peer of peers) {
    const id = peer.toString()
    if (!seen.has(id)) seen.set(id, { peer, key: peerKey(peer) })
  }
  return [...seen.values()]
    .sort((x, y) => compareDistance(x.key, y.key, target))
    .slice(0, Math.max(0, n))
    .map(e => e.peer)
}
