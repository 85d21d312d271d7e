/**
 * `--link-rate`: peers as test hosts in network namespaces (testnet/netns.ts) with a token-bucket rate limit on
 * both ends of every link, so each peer's uplink and downlink run at the given rate (FaaSFlow's testbed: 50 MB/s).
 */
import { NetnsNetwork, netnsSupport } from '../netns.ts'
import type { TestnetProgress } from '../index.ts'

export class LinkRateUnsupportedError extends Error {
  static readonly NAME = 'LinkRateUnsupportedError'
  constructor (message: string) {
    super(message)
    this.name = LinkRateUnsupportedError.NAME
  }
}

/** Throws LinkRateUnsupportedError unless namespaces can be made here and `ip` and `tc` (iproute2) work. */
export function requireLinkRateSupport (): void {
  const why = netnsSupport({ tc: true })
  if (why !== undefined) throw new LinkRateUnsupportedError(`--link-rate ${why}; run as root with iproute2 or drop --link-rate`)
}

export interface NetnsTestnet {
  peers: Array<{ index: number, api: string, peerId: string }>
  /** the namespaces and bridge created (for tests and cleanup checks) */
  namespaces: string[]
  bridge: string
  stop: () => Promise<void>
}

export async function startNetnsTestnet (opts: { peers: number, dir: string, flags: string[], linkRate: number, timeoutMs?: number, onProgress?: (p: TestnetProgress) => void }): Promise<NetnsTestnet> {
  requireLinkRateSupport()
  const net = new NetnsNetwork(opts.peers, { linkRate: opts.linkRate })
  await net.create()
  const namespaces = net.namespaceNames
  try {
    const peers = await net.manifest(opts.dir)
    await net.startPeers(peers, opts.flags, { timeoutMs: opts.timeoutMs, onProgress: opts.onProgress })
    return { peers: peers.map(p => ({ index: p.index, api: p.api, peerId: p.peerId })), namespaces, bridge: net.bridge, stop: async () => { await net.destroy() } }
  } catch (err) {
    await net.destroy()
    throw err
  }
}
