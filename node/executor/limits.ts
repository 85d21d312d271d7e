import type { InvokeOptions } from './types.ts'

/** What a peer lets one step ask for (`dflow peer --max-memory / --max-timeout / --max-retries`). */
export interface FunctionLimits {
  /** largest `memory:` of a step, MiB (heap and buffers: see channels.ts) */
  maxMemoryMb: number
  /** largest `timeout:` of a step, ms */
  maxTimeoutMs: number
  /** largest `retries:` of a step */
  maxRetries: number
}

/**
 * Far above every shipped and benchmark workflow under functions/ (they use the defaults: 256 MiB, 60 s, 0
 * retries, or the benchmark generator's larger memory/timeout for large factors), far below what would let one
 * request take a peer: 4 GiB, 15 minutes, 10 retries.
 */
export const DEFAULT_LIMITS: Readonly<FunctionLimits> = Object.freeze({
  maxMemoryMb: 4096,
  maxTimeoutMs: 15 * 60_000,
  maxRetries: 10
})

/** A step asks for more memory, time or retries than this peer allows. */
export class LimitError extends Error {
  static readonly NAME = 'LimitError'
  constructor (message: string) {
    super(message)
    this.name = LimitError.NAME
  }
}

interface StepAsks { memoryMb: number, timeoutMs: number, retries: number }

/** What a step asks for beyond the limits, one phrase each (empty when within). */
export function overLimits (step: Partial<StepAsks>, limits: Partial<FunctionLimits>): string[] {
  const over: string[] = []
  if (limits.maxMemoryMb !== undefined && step.memoryMb !== undefined && step.memoryMb > limits.maxMemoryMb) {
    over.push(`memory ${step.memoryMb} MiB exceeds this peer's limit of ${limits.maxMemoryMb} MiB (--max-memory)`)
  }
  if (limits.maxTimeoutMs !== undefined && step.timeoutMs !== undefined && step.timeoutMs > limits.maxTimeoutMs) {
    over.push(`timeout ${step.timeoutMs} ms exceeds this peer's limit of ${limits.maxTimeoutMs} ms (--max-timeout)`)
  }
  if (limits.maxRetries !== undefined && step.retries !== undefined && step.retries > limits.maxRetries) {
    over.push(`retries ${step.retries} exceeds this peer's limit of ${limits.maxRetries} (--max-retries)`)
  }
  return over
}

/** Refuses a workflow any of whose steps asks for more than the limits, naming every such step. */
export function checkWorkflowLimits (wf: { name: string, steps: Record<string, StepAsks> }, limits: Partial<FunctionLimits>): void {
  const problems = Object.entries(wf.steps).flatMap(([name, step]) => overLimits(step, limits).map(p => `step ${name}: ${p}`))
  if (problems.length > 0) throw new LimitError(`workflow ${wf.name} is refused: ${problems.join('; ')}`)
}

/** The pool's own check: the last line of defence if a caller skipped the loader's. */
export function checkInvokeLimits (opts: Pick<InvokeOptions, 'spec' | 'timeoutMs' | 'step'>, limits: Partial<FunctionLimits>): void {
  const over = overLimits({ memoryMb: opts.spec.memoryMb, timeoutMs: opts.timeoutMs }, limits)
  if (over.length > 0) throw new LimitError(`step ${opts.step.name}: ${over.join('; ')}`)
}
