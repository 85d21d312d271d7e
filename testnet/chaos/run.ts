import { rm } from 'node:fs/promises'
import { CHAOS_PEER_FLAGS, ProcessCluster, type ChaosCluster } from './cluster.ts'
import { runChaos, verified, type ChaosProgress, type ChaosResult } from './harness.ts'
import { makePlan, type ChaosPlan } from './plan.ts'
import type { TestnetProgress } from '../index.ts'

export interface ChaosOptions {
  /** @default 6 */
  peers?: number
  /** @default 30 */
  requests?: number
  workflows: string[]
  /** @default 2 */
  kill?: number
  restart?: boolean
  partition?: boolean
  seed: string | number
  /** use DIR's running testnet, or start one there */
  dir?: string
  /** @default 4 */
  concurrency?: number
  /** per request @default 60000 */
  requestTimeoutMs?: number
  /** keep a temp testnet dir even when everything verified */
  keep?: boolean
  signal?: AbortSignal
  /** called once the plan is made, before anything starts */
  onPlan?: (plan: ChaosPlan) => void
  onTestnet?: (p: TestnetProgress) => void
  onProgress?: (p: ChaosProgress) => void
  /** each peer drops this fraction of the readiness events it receives (seeded) @default 0 */
  dropEvents?: number
  /** a custom cluster (the namespace one for --partition); default: processes on 127.0.0.1 */
  openCluster?: (peers: number, flags: string[]) => Promise<ChaosCluster>
}

export interface ChaosRun extends ChaosResult {
  dir: string
  /** false when the temp testnet dir was removed */
  kept: boolean
}

/** Plans, starts (or finds) the testnet, runs the load with faults, verifies, and stops what it started. */
export async function chaos (opts: ChaosOptions): Promise<ChaosRun> {
  const peers = opts.peers ?? 6
  const base = makePlan({ seed: opts.seed, peers, requests: opts.requests ?? 30, workflows: opts.workflows, kill: opts.kill ?? 2, restart: opts.restart === true, partition: opts.partition })
  let cluster: ChaosCluster
  const flags = [...CHAOS_PEER_FLAGS, ...((opts.dropEvents ?? 0) > 0 ? ['--drop-events', String(opts.dropEvents)] : [])]
  if (opts.openCluster != null) cluster = await opts.openCluster(peers, flags)
  else cluster = await ProcessCluster.open({ peers, dir: opts.dir, flags, onProgress: opts.onTestnet })
  try {
    // a found testnet may have another size: the plan is made for the peers there are
    const plan = cluster.size === peers ? base : makePlan({ seed: opts.seed, peers: cluster.size, requests: opts.requests ?? 30, workflows: opts.workflows, kill: opts.kill ?? 2, restart: opts.restart === true, partition: opts.partition })
    opts.onPlan?.(plan)
    const result = await runChaos({ plan, cluster, concurrency: opts.concurrency, requestTimeoutMs: opts.requestTimeoutMs, signal: opts.signal, onProgress: opts.onProgress })
    await cluster.close()
    const keep = !cluster.owned || opts.dir != null || opts.keep === true || !verified(result.report)
    if (!keep) await rm(cluster.dir, { recursive: true, force: true })
    return { ...result, dir: cluster.dir, kept: keep }
  } catch (err) {
    await cluster.close().catch(() => {})
    throw err
  }
}
