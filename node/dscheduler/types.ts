import type { FunctionCode, InstanceSpec, InvokeOptions, InvokeResult } from '../executor/types.ts'
import type { Workflow } from '../workflow/types.ts'
import type { RequestMode, SignedBy, StoreMode } from '../../protocols/events/index.ts'
import type { Value } from '../values/codec.ts'

/** The part of the worker pool the scheduler uses. */
export interface FunctionPool {
  /**
   * make sure `count` instances of the spec are warm or warming (bounded by the pool's slots); with a holder (a
   * request id), up to `count` of them are not retired for idleness until `release(holder)`
   */
  prewarm: (spec: InstanceSpec, count?: number, holder?: string) => Promise<void>
  release?: (holder: string) => void
  invoke: (opts: InvokeOptions) => Promise<InvokeResult>
}

/** A workflow whose bundle was fetched and verified: its model and the code of each step. */
export interface LoadedWorkflow {
  cid: string
  workflow: Workflow
  functionOf: (step: string) => { code: FunctionCode, exportName: string }
}

export interface WorkflowLoader {
  /** Fetch (from `holders` or the DHT), verify against the CID, parse. Cached. */
  load: (cid: string, holders: string[], signal?: AbortSignal) => Promise<LoadedWorkflow>
}

/** Who is alive, as this peer sees it (always includes itself). */
export interface Membership {
  live: () => string[]
  isLive: (peer: string) => boolean
  /** this peer's incarnation (process start, ms) */
  readonly incarnation: number
  /** the latest incarnation known of a peer (learned from its probes, or from the news they carry) */
  incarnationOf: (peer: string) => number | undefined
  /** now while a peer is alive; when it was last known alive once suspected or dead (undefined: never known) */
  lastHeard: (peer: string) => number | undefined
}

/** An input as a client gives it: a value, or a reference to a value already in DStore. */
export type InputValue = Value | { $cid: string }

export interface SubmitOptions {
  workflow: string
  inputs: Record<string, InputValue>
  requestId?: string
  mode?: RequestMode
  store?: StoreMode
  deadlineMs?: number
  /** the client's signature, checked by the API before submit; it travels in request-started */
  auth?: SignedBy
}

export interface StepView {
  name: string
  index: number | null
  peer: string | null
  status: 'pending' | 'running' | 'ok' | 'failed' | 'skipped'
  coldStartMs: number | null
  readyMs: number | null
  startMs: number | null
  endMs: number | null
  error?: string
}

/** What `dflow run --json`, `dflow status --json` and `GET /v1/requests/:id` answer. */
export interface RequestView {
  requestId: string
  workflow: string
  mode: RequestMode
  store: StoreMode
  submitter: string
  status: 'running' | 'ok' | 'failed'
  outputs: Record<string, unknown>
  error?: string
  steps: StepView[]
  totalMs: number | null
}

export interface SchedulerInit {
  /** function slots: concurrently running instances (the pool enforces it; claims are bounded by it) @default 4 */
  slots: number
  /** finished requests are forgotten after this @default 3600000 */
  retentionMs?: number
  /** a claim lapses when its claimant has not been heard (heartbeats renew it) for this long; 0: membership alone decides @default 0 */
  leaseMs?: number
  /** a peer placement picked that has not claimed within this long is passed over for that instance @default 2000 */
  claimTimeoutMs?: number
  /** link rate placement prices moving bytes at, MiB/s @default 100 */
  linkMiBps?: number
  /** what handing a value to another peer costs besides moving its bytes, ms @default 2 */
  hopMs?: number
  /** where finished-request records are kept across restarts ('' keeps them in memory only) @default '' */
  recordsDir?: string
}
