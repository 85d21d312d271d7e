/** How many instances of one module ran at once on the request's start peer, and on the busiest other peer. */
export interface ModuleConcurrency { start: number, other: number }

/** Concurrency samples kept per module: the expectation is their maximum (placement varies between requests). */
const CONCURRENCY_SAMPLES = 4
/** hand-off samples kept of each kind (local, remote) */
const HANDOFF_SAMPLES = 32
/** a hop cost learned from remote hand-offs no newer than this is forgotten (ms) */
export const HANDOFF_STALE_MS = 30_000

function median (list: readonly number[]): number {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/**
 * What earlier requests of a workflow taught: how large each output usually is, how long each step
 * runs, and how many instances of each module a peer ran at once (pre-warming, prewarm.ts). Placement prices data that does not exist yet with it (a consumer is placed where most of its
 * future input bytes will be, not where the first small one happened to land). Every peer learns from the
 * same events, so every peer prices alike. Bounded: the least recently used workflows are forgotten.
 */
export class WorkflowHistory {
  private readonly workflows = new Map<string, Learned>()

  constructor (private readonly maxWorkflows = 64, private readonly weight = 0.3) {}

  private of (workflow: string): Learned {
    let h = this.workflows.get(workflow)
    if (h !== undefined) {
      this.workflows.delete(workflow)
      this.workflows.set(workflow, h)
      return h
    }
    h = { bytes: new Map(), ms: new Map(), post: new Map(), concurrency: new Map() }
    this.workflows.set(workflow, h)
    if (this.workflows.size > this.maxWorkflows) this.workflows.delete(this.workflows.keys().next().value as string)
    return h
  }

  private ema (map: Map<string, number>, key: string, sample: number): void {
    const prev = map.get(key)
    map.set(key, prev === undefined ? sample : prev + this.weight * (sample - prev))
  }

  /** An output value (or one stream element) of `step.output` was `size` bytes, `inline` ones count as 0. */
  recordOutput (workflow: string, step: string, output: string, size: number): void {
    this.ema(this.of(workflow).bytes, `${step}.${output}`, size)
  }

  /**
   * A run of `step` took `ms`. Runs are timed on peers busy with other steps, so a long run is partly load: the
   * estimate follows shorter runs quickly and longer ones slowly, and so stays near what the step costs on a
   * free slot (an estimate swollen by load made waits look longer than moves, and consumers left their data).
   */
  recordRun (workflow: string, step: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return
    const map = this.of(workflow).ms
    const prev = map.get(step)
    map.set(step, prev === undefined ? ms : prev + (ms < prev ? this.weight : this.weight / 3) * (ms - prev))
  }

  /**
   * A run of `step` that took `ms` had posted the last of its outputs `postMs` after it started (mid-run posts, or
   * `ms` when they came with its return). Kept as a fraction of the run, so that it scales with the run-time
   * estimate: a consumer's inputs exist that far into its producer's run (queue-model.ts), which at postAt 0.5 is
   * half a step before the producer frees its slot.
   */
  recordPost (workflow: string, step: string, postMs: number, ms: number): void {
    if (!Number.isFinite(postMs) || !Number.isFinite(ms) || ms <= 0) return
    this.ema(this.of(workflow).post, step, Math.min(1, Math.max(0, postMs / ms)))
  }

  /** How far into a run of `step` its outputs are all posted, ms (expectedMs scaled by the learned fraction; undefined: not learned). */
  expectedPostMs (workflow: string, step: string): number | undefined {
    const h = this.workflows.get(workflow)
    const ms = h?.ms.get(step)
    const fraction = h?.post.get(step)
    return ms === undefined || fraction === undefined ? undefined : ms * fraction
  }

  /**
   * Hand-offs seen (claims.ts handoffSample): from a producer's end to its consumer's readiness, ms, the last
   * HANDOFF_SAMPLES of each kind, and when the last remote one came.
   */
  private readonly handoff: { local: number[], remote: number[], remoteAt: number } = { local: [], remote: [], remoteAt: 0 }
  /** median(remote) - median(local), kept until the next sample (placement asks per instance placed) */
  private handoffGap: number | undefined

  recordHandoff (remote: boolean, ms: number, now = Date.now()): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > 10_000) return
    const list = remote ? this.handoff.remote : this.handoff.local
    list.push(ms)
    if (list.length > HANDOFF_SAMPLES) list.shift()
    if (remote) this.handoff.remoteAt = now
    this.handoffGap = undefined
  }

  /**
   * What handing an instance to another peer than its data's costs over running it there, ms: learned from the
   * hand-offs every peer sees alike (events, then a fetch, on a busy host tens of ms, not the link's 2), at
   * least `floor`; `floor` until both kinds were seen, and again once no remote one came for HANDOFF_STALE_MS.
   * Medians, not a moving average, and forgotten when stale, because the estimate decides its own samples: a
   * high one keeps work at its data, so no remote hand-off corrects it. In a bench's postAt 0.5 half (outputs
   * posted mid-run: a remote consumer ready before its producer ended gives no sample, so the fast ones were
   * missing) a few slow samples lifted a moving average to 250-490 ms, and every request of the next workflows
   * then ran on its submitting peer for minutes, 1.4-2.3x slower (docs/benchmarks, thirteenth session).
   */
  hopMs (floor: number, now = Date.now()): number {
    const { local, remote, remoteAt } = this.handoff
    if (local.length === 0 || remote.length === 0 || now - remoteAt > HANDOFF_STALE_MS) return floor
    this.handoffGap ??= median(remote) - median(local)
    return Math.min(Math.max(floor, this.handoffGap), 500)
  }

  expectedBytes (workflow: string, step: string, output: string): number | undefined {
    return this.workflows.get(workflow)?.bytes.get(`${step}.${output}`)
  }

  expectedMs (workflow: string, step: string): number | undefined {
    return this.workflows.get(workflow)?.ms.get(step)
  }

  /** One finished request ran at most `sample.start` instances of `module` at once on its start peer, `sample.other` on another. */
  recordConcurrency (workflow: string, module: string, sample: ModuleConcurrency): void {
    const m = this.of(workflow).concurrency
    const list = m.get(module) ?? []
    list.push(sample)
    if (list.length > CONCURRENCY_SAMPLES) list.shift()
    m.set(module, list)
  }

  expectedConcurrency (workflow: string, module: string): ModuleConcurrency | undefined {
    const list = this.workflows.get(workflow)?.concurrency.get(module)
    if (list === undefined || list.length === 0) return undefined
    return { start: Math.max(...list.map(c => c.start)), other: Math.max(...list.map(c => c.other)) }
  }

  knows (workflow: string): boolean { return this.workflows.has(workflow) }

  /** A step of the workflow met a cold start of `ms` (its instance was not warm when it fired). */
  recordColdStart (workflow: string, ms: number): void {
    if (!Number.isFinite(ms) || ms <= 0) return
    const h = this.of(workflow)
    h.coldMs = h.coldMs === undefined ? ms : h.coldMs + this.weight * (ms - h.coldMs)
  }

  /** What a cold start of the workflow's steps usually costs, ms (placement prices a peer with no warm instance with it). */
  expectedColdMs (workflow: string): number | undefined {
    return this.workflows.get(workflow)?.coldMs
  }
}

interface Learned {
  bytes: Map<string, number>
  ms: Map<string, number>
  /** step -> how far into its run its outputs are all posted, as a fraction of the run (moving average) */
  post: Map<string, number>
  /** module key (code cid:memory) -> the last few requests' concurrency */
  concurrency: Map<string, ModuleConcurrency[]>
  /** cold starts met by the workflow's steps, ms (moving average) */
  coldMs?: number
}
