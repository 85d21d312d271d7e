/** Percentiles, rows per workflow/mode/postAt, and the dataflow ratios. */
import type { BenchJob } from './workflows.ts'
import { lowerBoundMs } from './shape.ts'
import type { BenchMode, BenchResults, ResultRow, Sample } from './types.ts'

/** Nearest-rank percentile of sorted values (exact; no histogram buckets). */
export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

const mean = (xs: number[]): number => xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length
const round = (x: number, d = 1): number => Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x

export const rowKey = (workflow: string, mode: BenchMode, postAt: number | null): string => `${workflow}|${mode}|${postAt ?? '-'}`

/** Rows over the ok requests (failed ones are counted, not timed). */
export function summarise (samples: Sample[], jobs: BenchJob[], head: Omit<BenchResults, 'rows' | 'latencies'>): BenchResults {
  const rows: ResultRow[] = []
  const latencies: Record<string, number[]> = {}
  for (const job of jobs) {
    for (const mode of head.modes) {
      const mine = samples.filter(s => s.workflow === job.workflow && s.mode === mode && s.postAt === job.postAt)
      const ok = mine.filter(s => s.status === 'ok')
      const lat = ok.map(s => s.latencyMs).sort((a, b) => a - b)
      latencies[rowKey(job.workflow, mode, job.postAt)] = lat.map(x => round(x))
      const p50 = percentile(lat, 50)
      // dataflow starts consumers on posted outputs: its bound is the dataflow critical path at the row's postAt
      const lb = job.shape === null ? null : round(lowerBoundMs(job.shape, head.peers * head.slots, mode === 'dataflow' ? job.postAt ?? 1 : undefined))
      rows.push({
        workflow: job.workflow,
        mode,
        postAt: job.postAt,
        requests: ok.length,
        failed: mine.length - ok.length,
        p50Ms: round(p50),
        p99Ms: round(percentile(lat, 99)),
        meanMs: round(mean(lat)),
        bytes: Math.round(mean(ok.map(s => s.bytes))),
        sharedBytes: Math.round(mean(ok.map(s => s.sharedBytes ?? 0))),
        coldStartMs: round(mean(ok.map(s => s.coldStartMs))),
        coldSteps: round(mean(ok.map(s => s.coldSteps)), 2),
        criticalPathMs: job.criticalPathMs,
        overCriticalPath: job.criticalPathMs === null || job.criticalPathMs === 0 ? null : round(p50 / job.criticalPathMs, 2),
        lowerBoundMs: lb,
        overLowerBound: lb === null || lb === 0 ? null : round(p50 / lb, 2)
      })
    }
  }
  return { ...head, rows, latencies }
}

/** dataflow's value over another mode's, for one metric; null when either is missing or the divisor is 0. */
export function ratio (rows: ResultRow[], row: ResultRow, field: 'p50Ms' | 'p99Ms' | 'bytes' | 'coldStartMs' | 'lowerBoundMs', versus: BenchMode): number | null {
  const df = rows.find(r => r.workflow === row.workflow && r.postAt === row.postAt && r.mode === 'dataflow')
  const other = rows.find(r => r.workflow === row.workflow && r.postAt === row.postAt && r.mode === versus)
  if (df === undefined || other === undefined) return null
  const a = df[field]
  const b = other[field]
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null
  return Math.round((a / b) * 100) / 100
}
