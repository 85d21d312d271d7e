/** Shared shapes of `dflow bench`: options, samples, result rows, results.json. */
import type { ModuleLayout } from '../../functions/benchmarks/generate.ts'

export const MODES = ['dataflow', 'control', 'central'] as const
export type BenchMode = typeof MODES[number]

/** What each mode sends with a request (`central` = control flow with every value on the submitter). */
export const MODE_REQUEST: Record<BenchMode, { mode: 'dataflow' | 'control', store?: 'central' }> = {
  dataflow: { mode: 'dataflow' },
  control: { mode: 'control' },
  central: { mode: 'control', store: 'central' }
}

export interface BenchOptions {
  peers: number
  /** benchmark names, plus `example:<name>` for the real example workflows */
  workflows: string[]
  modes: BenchMode[]
  /** measured requests per workflow, mode and postAt */
  requests: number
  /** discarded requests per workflow, mode and postAt before measuring @default 1 */
  warmup: number
  /** open loop: Poisson arrivals at this many requests per minute (all workflows and modes together) */
  ratePerMin?: number
  seed: number
  /** bytes per second per link (netns mode) */
  linkRate?: number
  /** an existing directory for the testnet (else a temporary one, removed afterwards) */
  dir?: string
  timeScale: number
  sizeScale: number
  initMs: number
  postAt: number[]
  slots: number
  /** copies DStore keeps of every value (0: only executions move data, the paper's comparison) */
  replicas: number
  /** per request @default 120000 */
  requestTimeoutMs?: number
  /** peers stop a warm instance idle this long (`dflow peer --idle-instance`), e.g. "2s"; default: the peers' */
  idleInstance?: string
  /** stem cells per peer (`dflow peer --stem-cells`); default: the peers' */
  stemCells?: number
  /**
   * module layouts of the benchmark workflows, each a set of jobs: per-workflow (all steps in one module, the
   * default) and/or per-step (one module per step, as one function per container; jobs named `<name>/per-step`)
   */
  modules?: ModuleLayout[]
  /** false: peers run with `dflow peer --no-shared-store` (values move over libp2p even on one host) @default true */
  sharedStore?: boolean
  /** also run the same shapes on a central engine, side by side (after the dflow run, with the testnet stopped) */
  yardstick?: 'dask'
  /** aborts the run between requests (the testnet is still stopped) */
  signal?: AbortSignal
}

/** One measured request. */
export interface Sample {
  workflow: string
  mode: BenchMode
  /** null for the example workflows (they post at return) */
  postAt: number | null
  requestId: string
  status: 'ok' | 'failed'
  error?: string
  /** client-measured: submit sent -> request-done seen */
  latencyMs: number
  /** the request's own totalMs (first event -> done, as the peers saw it) */
  serverMs: number | null
  /** bytes sent between peers while it ran (closed loop: exact delta; open loop: apportioned) */
  bytes: number
  /** bytes peers took from same-host peers' shared files while it ran (DStore `sharedBytes`; not in `bytes`) */
  sharedBytes: number
  /** sum over its steps of coldStartMs (time a step waited for its instance to start) */
  coldStartMs: number
  /** steps that found no warm instance (coldStartMs > 0) */
  coldSteps: number
  peer: number
  submittedAt: number
  doneAt: number
  steps: Array<{ name: string, index: number | null, peer: string | null, status: string, coldStartMs: number | null, readyMs: number | null, startMs: number | null, endMs: number | null }>
}

export interface ResultRow {
  workflow: string
  mode: BenchMode
  postAt: number | null
  requests: number
  failed: number
  p50Ms: number
  p99Ms: number
  meanMs: number
  bytes: number
  /** mean per request; 0 with the shared store off */
  sharedBytes: number
  coldStartMs: number
  coldSteps: number
  criticalPathMs: number | null
  /** p50 / criticalPathMs */
  overCriticalPath: number | null
  /** max(critical path, total runtime / (peers x slots)): no schedule finishes sooner; null for the examples */
  lowerBoundMs: number | null
  /** p50 / lowerBoundMs */
  overLowerBound: number | null
}

export interface BenchResults {
  machine: string
  date: string
  commit: string
  peers: number
  slots: number
  replicas: number
  timeScale: number
  sizeScale: number
  initMs: number
  postAt: number[]
  modes: BenchMode[]
  loop: 'closed' | 'open'
  ratePerMin: number | null
  linkRate: number | null
  warmup: number
  seed: number
  durationMs: number
  /** libp2p bytes/s sent by all peers together with no request running (measured before the run) */
  idleBytesPerSec: number
  /** how `bytes` was measured */
  bytesMethod: string
  /** what the peers ran with as `--idle-instance` (null: the peers' default) */
  idleInstance: string | null
  /** what the peers ran with as `--stem-cells` (null: the peers' default) */
  stemCells?: number | null
  /** module layouts run (`--modules`; per-step jobs are named `<name>/per-step`) */
  modules?: ModuleLayout[]
  /** whether peers used the same-host fast path (false: `--no-shared-store`) */
  sharedStore: boolean
  /** function instances the peers started over the whole run, warm-ups included (null: a peer did not say) */
  instanceStarts?: number | null
  /** of instanceStarts, those started in a stem cell (a process booted ahead) */
  stemCellStarts?: number | null
  rows: ResultRow[]
  /** the central engine run on the same shapes (`--yardstick dask`): per workflow, or why it was skipped */
  yardstick?: YardstickSummary
  /** per row key `${workflow}|${mode}|${postAt}`: sorted latencies, for the CDF chart */
  latencies: Record<string, number[]>
}

export type YardstickSummary =
  | { engine: 'dask', version: string, workers: number, threads: number, rows: Array<{ workflow: string, requests: number, p50Ms: number, p99Ms: number, lowerBoundMs: number | null }> }
  | { engine: 'dask', skipped: string }
