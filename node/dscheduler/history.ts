/**
 * What earlier requests of a workflow taught: how large each output usually is and how long each step
 * runs. Placement prices data that does not exist yet with it (a consumer is placed where most of its
 * future input bytes will be, not where the first small one happened to land). Every peer learns from the
 * same events, so every peer prices alike. Bounded: the least recently used workflows are forgotten.
 */
export class WorkflowHistory {
  private readonly workflows = new Map<string, { bytes: Map<string, number>, ms: Map<string, number> }>()

  constructor (private readonly maxWorkflows = 64, private readonly weight = 0.3) {}

  private of (workflow: string): { bytes: Map<string, number>, ms: Map<string, number> } {
    let h = this.workflows.get(workflow)
    if (h !== undefined) {
      this.workflows.delete(workflow)
      this.workflows.set(workflow, h)
      return h
    }
    h = { bytes: new Map(), ms: new Map() }
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

  /** Hand-offs seen (claims.ts handoffSample): from a producer's end to its consumer's readiness, ms. */
  private readonly handoff: { local?: number, remote?: number } = {}

  recordHandoff (remote: boolean, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > 10_000) return
    const prev = remote ? this.handoff.remote : this.handoff.local
    const next = prev === undefined ? ms : prev + this.weight * (ms - prev)
    if (remote) this.handoff.remote = next
    else this.handoff.local = next
  }

  /**
   * What handing an instance to another peer than its data's costs over running it there, ms: learned from the
   * hand-offs every peer sees alike (events, then a fetch, on a busy host tens of ms, not the link's 2), at
   * least `floor`; `floor` until both kinds were seen.
   */
  hopMs (floor: number): number {
    const { local, remote } = this.handoff
    if (local === undefined || remote === undefined) return floor
    return Math.min(Math.max(floor, remote - local), 500)
  }

  expectedBytes (workflow: string, step: string, output: string): number | undefined {
    return this.workflows.get(workflow)?.bytes.get(`${step}.${output}`)
  }

  expectedMs (workflow: string, step: string): number | undefined {
    return this.workflows.get(workflow)?.ms.get(step)
  }

  knows (workflow: string): boolean { return this.workflows.has(workflow) }
}
