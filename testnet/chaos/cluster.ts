import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { isAlive, openTestnet, readManifest, startTestnet, type Testnet, type TestnetProgress } from '../index.ts'
import type { FaultKind } from './plan.ts'

/** Short failure timeouts so takeovers happen within seconds on a testnet. */
export const CHAOS_PEER_FLAGS = ['--failure-timeout', '2s', '--heartbeat', '500ms', '--lease', '2s']

export interface ClusterPeer {
  index: number
  api: string
  /** the current incarnation */
  pid: number
}

/** What the harness needs of a testnet: peers it can reach, a fault to inject and its repair. */
export interface ChaosCluster {
  readonly dir: string
  /** true: this run started it (and stops it); false: it was found running (and is left running) */
  readonly owned: boolean
  readonly size: number
  peer: (index: number) => ClusterPeer
  /** reachable by the harness and not faulted */
  isUp: (index: number) => boolean
  fault: (index: number, kind: FaultKind) => Promise<void>
  /** restart (kill) or heal (partition); resolves once the peer serves again */
  recover: (index: number, kind: FaultKind) => Promise<void>
  /** stops what it started; leaves a found testnet running */
  close: () => Promise<void>
}

export class ChaosClusterError extends Error {
  static readonly NAME = 'ChaosClusterError'
  constructor (message: string) {
    super(message)
    this.name = ChaosClusterError.NAME
  }
}

/** Peers as processes on 127.0.0.1 (testnet/index.ts); faults are SIGKILLs. */
export class ProcessCluster implements ChaosCluster {
  private readonly down = new Set<number>()

  private constructor (private readonly net: Testnet, readonly owned: boolean) {}

  get dir (): string { return this.net.dir }
  get size (): number { return this.net.manifest.peers.length }

  /**
   * DIR's testnet when one is running there (left running at the end), otherwise a new one of `peers`
   * peers in DIR or a temp dir (stopped at the end).
   */
  static async open (opts: { peers: number, dir?: string, flags?: string[], onProgress?: (p: TestnetProgress) => void, timeoutMs?: number }): Promise<ProcessCluster> {
    if (opts.dir != null) {
      const m = await readManifest(resolve(opts.dir))
      if (m != null && m.peers.some(p => isAlive(p.pid))) {
        const net = await openTestnet(opts.dir)
        const cluster = new ProcessCluster(net, false)
        for (const p of m.peers) if (!isAlive(p.pid)) cluster.down.add(p.index)
        return cluster
      }
    }
    const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'dflow-chaos-'))
    const net = await startTestnet({ peers: opts.peers, dir, flags: opts.flags ?? CHAOS_PEER_FLAGS, onProgress: opts.onProgress, timeoutMs: opts.timeoutMs })
    return new ProcessCluster(net, true)
  }

  peer (index: number): ClusterPeer {
    const p = this.net.manifest.peers[index]
    return { index, api: p.api, pid: p.pid }
  }

  isUp (index: number): boolean {
    return !this.down.has(index) && isAlive(this.net.manifest.peers[index].pid)
  }

  async fault (index: number, kind: FaultKind): Promise<void> {
    if (kind !== 'kill') throw new ChaosClusterError('partitions need the namespace testnet (--partition)')
    this.down.add(index)
    await this.net.kill(index)
  }

  async recover (index: number): Promise<void> {
    await this.net.restart(index, { timeoutMs: 60_000 })
    this.down.delete(index)
  }

  async close (): Promise<void> {
    if (this.owned) await this.net.stop(3000)
  }
}
