/**
 * Recovery time of one fault: from the moment of the kill (or cut) until every request that was in flight
 * then has finished. A fault that hit while nothing was in flight is measured until the next request
 * completes. A fault after which some in-flight request never finished has no recovery time (those requests
 * are reported as lost anyway).
 */
export interface TimedRequest {
  submittedAt: number
  /** undefined: never finished */
  finishedAt?: number
}

export function recoveryMs (faultAt: number, requests: TimedRequest[]): number | undefined {
  const inFlight = requests.filter(r => r.submittedAt <= faultAt && (r.finishedAt === undefined || r.finishedAt > faultAt))
  if (inFlight.length > 0) {
    if (inFlight.some(r => r.finishedAt === undefined)) return undefined
    return Math.max(...inFlight.map(r => r.finishedAt as number)) - faultAt
  }
  const next = requests.map(r => r.finishedAt).filter((t): t is number => t !== undefined && t > faultAt)
  if (next.length === 0) return undefined
  return Math.min(...next) - faultAt
}

/** Nearest-rank percentile (p in 0..100); null for no samples. With few faults p99 is the maximum. */
export function percentile (samples: number[], p: number): number | null {
  if (samples.length === 0) return null
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]
}
