import type { Value } from '../values/codec.ts'

/** One esbuild-bundled ESM module of a workflow, identified by the CID of its code. */
export interface FunctionCode {
  cid: string
  code: string
}

/** What an instance (a worker) is: a module loaded under a heap limit. Warm instances are reused per spec. */
export interface InstanceSpec {
  code: FunctionCode
  memoryMb: number
}

/** Stages of an invocation in the pool that a step timeline shows (see InvokeOptions.onPhase). */
export type InvocationPhase = 'slot' | 'posted'

export interface InvokeOptions {
  spec: InstanceSpec
  /** the export to call; 'default' for the default export */
  exportName: string
  request: { id: string, workflow: string }
  step: { name: string, index: number | null }
  /** declared outputs; anything else fails the step */
  outputs: string[]
  timeoutMs: number
  /** cancel (request cancelled or failed): the function sees ctx.signal abort, then the instance is terminated */
  signal?: AbortSignal
  /**
   * values of parameters that exist already, sent with the invocation: the function's ctx.input answers them
   * at once instead of asking the host (a round trip over the instance's channel per input)
   */
  preloaded?: Record<string, Value>
  /**
   * more such values, read once the invocation has its slot (so that invocations waiting for one hold none of
   * them: a thousand foreach instances queued over one large list would each hold the decoded list); merged over
   * `preloaded`
   */
  preload?: () => Promise<Record<string, Value> | undefined>
  /** resolves when the parameter's value exists (host side); rejects for an unknown parameter */
  input: (name: string) => Promise<Value>
  /**
   * whether the parameter's value exists already: a function that asks for one that does not (an eager step)
   * gives its slot back while it waits, so producers on this peer are not queued behind it
   */
  inputReady?: (name: string) => boolean
  /** a value output posted (ctx.output or a property of the returned object) */
  onOutput: (name: string, value: Value) => void
  /**
   * the value outputs posted so far were posted mid-run: the function had not returned at the end of the turn in
   * which it posted them (so they will not ride in its return)
   */
  onMidRun?: () => void
  /** one element of a stream output (ctx.emit) */
  onEmit: (name: string, index: number, value: Value) => void
  onLog: (line: string) => void
  /**
   * called once the function runs in an instance, with a way to queue a follower there: it runs right after this
   * invocation returns successfully, its inputs `from` this one's value outputs (input name -> output name)
   */
  onRunning?: (follow: FollowFn) => void
  /**
   * when this invocation should start at the latest for its request to end on time (epoch ms): while the pool's
   * slots are all taken, a freed slot goes to the waiting invocation with the earliest `startBy`, first come
   * first served among equal ones; one without comes after all that have one
   */
  startBy?: number
  /**
   * all its inputs exist: while every slot is taken it may wait queued in a busy instance of its module and start
   * there the moment that instance's invocation returns, on its slot (no round trip through the host between the
   * two). An eager step waiting for data must not: there it would hold the slot while it waits. @default false
   */
  queueInInstance?: boolean
  /**
   * the pool's stages of this invocation as they happen (epoch ms), for step timelines: `slot` when it got a slot
   * (or a place behind a busy instance's invocation), `posted` when it was sent to its instance (inputs read, the
   * instance warm)
   */
  onPhase?: (phase: InvocationPhase, at: number) => void
}

/**
 * Queues `opts` to run in the running invocation's instance right after it (same module and memory limit).
 * undefined: it cannot be queued now. The result rejects with ChainDroppedError when the follower did not run
 * there (the caller then invokes it as usual); `cancel` takes the link back unless the follower started already.
 */
export type FollowFn = (opts: InvokeOptions, from: Record<string, string>) => { result: Promise<InvokeResult>, cancel: () => void } | undefined

export interface InvokeResult {
  /** time spent waiting for an instance to be ready (worker start + module load); 0 when warm */
  coldStartMs: number
  /** epoch ms when the function was called / returned */
  startedAt: number
  endedAt: number
  /** outputs that were streams, with their element counts (closed at return) */
  streams: Record<string, number>
}
