import { multiaddr } from '@multiformats/multiaddr'
import type { DflowLibp2p } from './network/libp2p.ts'
import type { Logger, PeerId } from '@libp2p/interface'
import { anyWithTimeout } from '../protocols/util/timeout-signal.ts'

export interface DiscoveryOptions {
  bootstrap: string[]
  log: Logger
  /** first lookup interval; triples up to maxIntervalMs, back to this when a peer connects for the first time. @default 500 */
  minIntervalMs?: number
  /** @default 300000 (a settled network needs no lookups; a newcomer's connection brings the interval back down) */
  maxIntervalMs?: number
  /**
   * with this many connections the peer is joined: lookups wait for the longest interval (the membership
   * greets every member it hears of, which connects them and fills the routing table) @default 4
   */
  enoughConnections?: number
}

/**
 * Keeps a peer joined: redials bootstrap addresses while it has no connection (@libp2p/bootstrap dials once,
 * at start), and looks up the peers closest to itself in the DHT, which connects it to them. kad-dht's own
 * self-query stops after the first success, so peers that joined a moment later would stay unknown to each
 * other; the lookup backs off while nothing changes. Returns a stop function.
 */
export function startDiscovery (libp2p: DflowLibp2p, opts: DiscoveryOptions): () => void {
  const min = opts.minIntervalMs ?? 500
  const max = opts.maxIntervalMs ?? 300_000
  const controller = new AbortController()
  let delay = min
  let timer: NodeJS.Timeout | undefined
  let running = false
  /**
   * the last lookup found no peer this one had not met: in a network smaller than enoughConnections (4 peers have
   * 3 others) the peer would otherwise never count as joined, and kept looking itself up at 13.5, 40 and 121 s,
   * each lookup waking every peer it asked (one landed in the idle window of `npm run bench:scale`)
   */
  let settled = false

  // peers seen connecting; a reconnection (a probe, a fetch) is no news and must not restart the lookups, or a
  // settled network would keep looking itself up
  const seen = new Set<string>()
  const onConnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    if (seen.has(id) || seen.size > 10_000) return
    seen.add(id)
    settled = false
    // a newcomer may know peers we do not: look again soon
    if (delay > min) {
      delay = min
      clearTimeout(timer)
      schedule()
    }
  }

  const tick = async (): Promise<void> => {
    if (running || controller.signal.aborted) return
    running = true
    try {
      if (libp2p.getConnections().length === 0 && opts.bootstrap.length > 0) {
        await Promise.all(opts.bootstrap.map(async ma => {
          try {
            await libp2p.dial(multiaddr(ma), { signal: anyWithTimeout([controller.signal], 5000) })
          } catch (err) {
            opts.log('bootstrap dial %s failed: %s', ma, (err as Error).message)
          }
        }))
      }
      const connections = libp2p.getConnections().length
      const joined = (connections >= (opts.enoughConnections ?? 4) || settled) && delay < max
      if (connections > 0 && !joined) {
        const signal = anyWithTimeout([controller.signal], 10_000)
        const met = new Set([...seen, ...libp2p.getConnections().map(c => c.remotePeer.toString())])
        let found = 0
        let news = 0
        try {
          for await (const event of libp2p.services.dht.getClosestPeers(libp2p.peerId.toMultihash().bytes, { signal })) {
            if (event.name !== 'FINAL_PEER') continue
            found++
            if (!met.has(event.peer.id.toString())) news++
          }
          settled = found > 0 && news === 0
        } catch (err) {
          if (!controller.signal.aborted) opts.log('self lookup failed: %s', (err as Error).message)
        }
      }
    } finally {
      running = false
    }
    delay = Math.min(delay * 3, max)
    schedule()
  }

  function schedule (): void {
    if (controller.signal.aborted) return
    timer = setTimeout(() => { void tick() }, delay)
    timer.unref?.()
  }

  libp2p.addEventListener('peer:connect', onConnect)
  schedule()
  return () => {
    controller.abort()
    clearTimeout(timer)
    libp2p.removeEventListener('peer:connect', onConnect)
  }
}
