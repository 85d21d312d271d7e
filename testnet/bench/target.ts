/** The peers a bench runs against: its own loopback testnet, or (with a link rate) peers in network namespaces. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { startTestnet, type TestnetProgress } from '../index.ts'
import { startNetnsTestnet } from './netns.ts'

export interface BenchTarget {
  peers: Array<{ index: number, api: string, peerId: string }>
  dir: string
  stop: () => Promise<void>
}

/** `extraFlags` go to every `dflow peer` as they are (e.g. --idle-instance 2s). */
export async function startTarget (opts: { peers: number, slots: number, replicas: number, dir?: string, linkRate?: number, extraFlags?: string[], onProgress?: (p: TestnetProgress) => void }): Promise<BenchTarget> {
  const own = opts.dir === undefined
  const dir = own ? await mkdtemp(join(tmpdir(), 'dflow-bench-')) : resolve(opts.dir!)
  const flags = ['--slots', String(opts.slots), '--replicas', String(opts.replicas), ...(opts.extraFlags ?? [])]
  try {
    if (opts.linkRate !== undefined) {
      const net = await startNetnsTestnet({ peers: opts.peers, dir, flags, linkRate: opts.linkRate, onProgress: opts.onProgress })
      return {
        peers: net.peers,
        dir,
        stop: async () => {
          try { await net.stop() } finally { if (own) await rm(dir, { recursive: true, force: true }) }
        }
      }
    }
    const testnet = await startTestnet({ peers: opts.peers, dir, flags, onProgress: opts.onProgress })
    return {
      peers: testnet.manifest.peers.map(p => ({ index: p.index, api: p.api, peerId: p.peerId })),
      dir,
      stop: async () => {
        try { await testnet.stop() } finally { if (own) await rm(dir, { recursive: true, force: true }) }
      }
    }
  } catch (err) {
    if (own) await rm(dir, { recursive: true, force: true }).catch(() => {})
    throw err
  }
}
