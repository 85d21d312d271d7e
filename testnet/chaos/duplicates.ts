import type { ChaosCluster } from './cluster.ts'
import type { RequestOutcome } from './harness.ts'

const RUNS_TIMEOUT_MS = 8000

interface RunEntry { step: string, index: number | null, peer: string, attempt: number, incarnation: number }

/**
 * Instances that ran on more than one claim (to completion or not), from the run records of every peer that
 * is up at the end. Runs made by a process that was killed are gone with it: after a kill this is a floor.
 */
export async function countDuplicateRuns (cluster: ChaosCluster, outcomes: RequestOutcome[], signal?: AbortSignal): Promise<number> {
  const up = Array.from({ length: cluster.size }, (_, i) => i).filter(i => cluster.isUp(i))
  let duplicates = 0
  for (const out of outcomes) {
    const claims = new Map<string, Set<string>>()
    for (const i of up) {
      let runs: RunEntry[] = []
      try {
        const res = await fetch(`${cluster.peer(i).api}/v1/requests/${encodeURIComponent(out.requestId)}/runs`, { signal: signal ?? AbortSignal.timeout(RUNS_TIMEOUT_MS) })
        if (res.ok) runs = ((await res.json()) as { runs?: RunEntry[] }).runs ?? []
      } catch {
        continue
      }
      for (const r of runs) {
        const key = `${r.step}#${r.index ?? ''}`
        const set = claims.get(key) ?? new Set<string>()
        set.add(`${r.peer}/${r.attempt}/${r.incarnation}`)
        claims.set(key, set)
      }
    }
    for (const set of claims.values()) if (set.size > 1) duplicates++
  }
  return duplicates
}
