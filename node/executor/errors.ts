/**
 * Why a step invocation failed. Every class has a stable `name` (callers and tests match on it) and carries the
 * step and foreach index, so a scheduler can fail the request with an error that names the step.
 */

export interface StepLocation {
  step: string
  index: number | null
}

/** `count` or `count[3]`: how messages name a step instance. */
export function stepLabel (loc: StepLocation): string {
  return loc.index === null ? loc.step : `${loc.step}[${loc.index}]`
}

export class StepError extends Error {
  static readonly NAME: string = 'StepError'
  readonly step: string
  readonly index: number | null

  constructor (loc: StepLocation, message: string, options?: ErrorOptions) {
    super(`step ${stepLabel(loc)}: ${message}`, options)
    this.name = StepError.NAME
    this.step = loc.step
    this.index = loc.index
  }
}

/** The user's function threw (or rejected). `functionMessage`/`functionStack` are the user's own error's. */
export class FunctionError extends StepError {
  static readonly NAME = 'FunctionError'
  readonly functionMessage: string
  readonly functionStack?: string

  constructor (loc: StepLocation, functionMessage: string, functionStack?: string) {
    super(loc, functionMessage)
    this.name = FunctionError.NAME
    this.functionMessage = functionMessage
    this.functionStack = functionStack
    // the user's frames are what matters; the host frames of this constructor say nothing
    if (functionStack !== undefined) {
      const frames = functionStack.split('\n').filter(l => /^\s+at /.test(l))
      this.stack = [`${this.name}: ${this.message}`, ...frames].join('\n')
    }
  }
}

/** An output rule was broken: missing, undeclared, produced twice, emit/output mixed, not a value, bad return. */
export class OutputError extends StepError {
  static readonly NAME = 'OutputError'
  /** the output concerned, when there is one */
  readonly output?: string

  constructor (loc: StepLocation, message: string, output?: string) {
    super(loc, message)
    this.name = OutputError.NAME
    this.output = output
  }
}

export class StepTimeoutError extends StepError {
  static readonly NAME = 'StepTimeoutError'
  readonly timeoutMs: number

  constructor (loc: StepLocation, timeoutMs: number, message = `timed out after ${timeoutMs} ms`) {
    super(loc, message)
    this.name = StepTimeoutError.NAME
    this.timeoutMs = timeoutMs
  }
}

export class StepOutOfMemoryError extends StepError {
  static readonly NAME = 'StepOutOfMemoryError'
  readonly memoryMb: number

  constructor (loc: StepLocation, memoryMb: number) {
    super(loc, `ran out of memory (limit ${memoryMb} MiB)`)
    this.name = StepOutOfMemoryError.NAME
    this.memoryMb = memoryMb
  }
}

/** The instance died under the function: process.exit(), an uncaught error in a timer, an unhandled rejection. */
export class StepCrashedError extends StepError {
  static readonly NAME = 'StepCrashedError'
  readonly exitCode?: number

  constructor (loc: StepLocation, message: string, exitCode?: number) {
    super(loc, message)
    this.name = StepCrashedError.NAME
    this.exitCode = exitCode
  }
}

export class StepCancelledError extends StepError {
  static readonly NAME = 'StepCancelledError'

  constructor (loc: StepLocation, message = 'cancelled') {
    super(loc, message)
    this.name = StepCancelledError.NAME
  }
}

/** The module could not be loaded (syntax error, top-level throw) or the export is missing / not a function. */
export class ModuleLoadError extends StepError {
  static readonly NAME = 'ModuleLoadError'
  readonly cid: string

  constructor (loc: StepLocation, cid: string, message: string, options?: ErrorOptions) {
    super(loc, message, options)
    this.name = ModuleLoadError.NAME
    this.cid = cid
  }
}

/** The pool was stopped before the invocation could run. */
export class PoolStoppedError extends Error {
  static readonly NAME = 'PoolStoppedError'
  constructor (message = 'worker pool stopped') {
    super(message)
    this.name = PoolStoppedError.NAME
  }
}

/**
 * A follower did not run after its producer in the producer's instance (the producer failed or was aborted, had
 * returned before the link arrived, or the link was taken back): nothing ran, the caller invokes it as usual.
 */
export class ChainDroppedError extends Error {
  static readonly NAME = 'ChainDroppedError'
  constructor (message = 'the follower did not run after its producer') {
    super(message)
    this.name = ChainDroppedError.NAME
  }
}
