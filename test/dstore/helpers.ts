import '../../node/util/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { DStoreService, type DStoreConfig, type DStoreServiceInit } from '../../node/dstore/dstore.ts'
import { trafficMetrics, type TrafficMetrics } from '../../node/metrics/traffic.ts'
import type { PrivateKey } from '@libp2p/interface'

export interface TestPeer {
  libp2p: DflowLibp2p
  store: DStoreService
  traffic: TrafficMetrics
  key: PrivateKey
}

/** Peers move values over TCP unless a test asks for the same-host fast path (`sharedStore: true`). */
export async function startPeer (config: Partial<DStoreConfig> = {}, extra: Partial<DStoreServiceInit> = {}, key?: PrivateKey): Promise<TestPeer> {
  const privateKey = key ?? await generateKeyPair('Ed25519')
  let traffic: TrafficMetrics | undefined
  const libp2p = await createDflowLibp2p({ privateKey, metrics: trafficMetrics(m => { traffic = m }) })
  await libp2p.start()
  const store = new DStoreService({ libp2p, logger: defaultLogger(), config: { dhtTimeoutMs: 5_000, fetchTimeoutMs: 30_000, sharedStore: false, ...config }, ...extra })
  await store.start()
  if (traffic == null) throw new Error('metrics factory was not called')
  return { libp2p, store, traffic, key: privateKey }
}

export async function connectAll (peers: TestPeer[]): Promise<void> {
  for (let i = 0; i < peers.length; i++) {
    for (let j = i + 1; j < peers.length; j++) {
      await peers[i].libp2p.dial(peers[j].libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
    }
  }
  await waitFor(() => peers.every(p => p.libp2p.getPeers().length >= peers.length - 1), 'full mesh')
}

export async function stopPeer (p: TestPeer): Promise<void> {
  await p.store.stop()
  await p.libp2p.stop()
}

/** Polls `check` until it holds or the deadline passes. */
export async function waitFor (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export function randomBytes (n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; out[i] = x >>> 16 }
  return out
}
