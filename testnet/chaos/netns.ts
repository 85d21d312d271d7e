import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { NetnsError, NetnsNetwork, netnsSupport } from '../netns.ts'
import { isAlive, signal } from '../process.ts'
import { waitForMesh } from '../readiness.ts'
import { CHAOS_PEER_FLAGS, type ChaosCluster, type ClusterPeer } from './cluster.ts'
import type { ManifestPeer, TestnetProgress } from '../index.ts'
import type { FaultKind } from './plan.ts'

/** undefined when partitions can run here, otherwise why not ("needs root ..."). */
export function partitionSupport (): string | undefined {
  return netnsSupport()
}

/** Peers as processes in network namespaces; faults are link cuts (partitions). Always owned: close() removes it all. */
export class NetnsCluster implements ChaosCluster {
  readonly owned = true
  private readonly cutOff = new Set<number>()

  private constructor (readonly dir: string, private readonly net: NetnsNetwork, private readonly manifest: ManifestPeer[]) {}

  get size (): number { return this.manifest.length }

  static async start (opts: { peers: number, dir?: string, flags?: string[], onProgress?: (p: TestnetProgress) => void, timeoutMs?: number }): Promise<NetnsCluster> {
    const why = partitionSupport()
    if (why !== undefined) throw new NetnsError(`--partition ${why}`)
    const dir = resolve(opts.dir ?? await mkdtemp(join(tmpdir(), 'dflow-chaos-netns-')))
    await mkdir(dir, { recursive: true })
    const net = new NetnsNetwork(opts.peers)
    await net.create()
    const peers = await net.manifest(dir)
    const cluster = new NetnsCluster(dir, net, peers)
    try {
      await net.startPeers(peers, opts.flags ?? CHAOS_PEER_FLAGS, { timeoutMs: opts.timeoutMs, onProgress: opts.onProgress })
      return cluster
    } catch (err) {
      await cluster.close()
      throw err
    }
  }

  peer (index: number): ClusterPeer {
    const p = this.manifest[index]
    return { index, api: p.api, pid: p.pid }
  }

  isUp (index: number): boolean {
    return !this.cutOff.has(index) && isAlive(this.manifest[index].pid)
  }

  async fault (index: number, kind: FaultKind): Promise<void> {
    this.cutOff.add(index)
    if (kind === 'partition') { await this.net.cut(index); return }
    signal(this.manifest[index].pid, 'SIGKILL')
  }

  /** Heals the link and waits until the mesh holds every peer again. */
  async recover (index: number, kind: FaultKind): Promise<void> {
    if (kind !== 'partition') throw new NetnsError('the namespace testnet heals cuts; it does not restart killed peers')
    await this.net.heal(index)
    const live = this.manifest.filter(p => isAlive(p.pid))
    await waitForMesh(live, { timeoutMs: 60_000 })
    this.cutOff.delete(index)
  }

  async close (): Promise<void> {
    await this.net.destroy()
  }
}
