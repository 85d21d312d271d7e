import type { Value } from '../values/codec.ts'

/**
 * What a step function receives: `export async function count (ctx: StepContext) { ... }`.
 * Outputs posted with `output`/`emit` leave the instance at once, before the function returns, so
 * downstream steps can start while this one is still running.
 */
export interface StepContext {
  /** Resolves when the parameter's value exists; rejects for a parameter the step does not declare in `in:`. */
  input<T = Value>(name: string): Promise<T>
  /** Posts a value output now. Each declared output is produced exactly once. */
  output(name: string, value: Value): void
  /** Posts one element of a stream output now (indices 0, 1, 2...); the stream closes when the function returns. */
  emit(name: string, value: Value): void
  readonly request: { id: string, workflow: string }
  /** `index` is the foreach position, null outside foreach */
  readonly step: { name: string, index: number | null }
  /** aborted on timeout or cancel (the request failed or was cancelled) */
  readonly signal: AbortSignal
  /** formatted like console.log; goes to the peer's log for this step */
  log(...args: unknown[]): void
}

/** The shape of a step function module export. */
export type StepFunction = (ctx: StepContext) => unknown
