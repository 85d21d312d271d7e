import { processChannel, threadChannel, type ChannelHandlers, type InstanceChannel, type Isolation } from './channels.ts'
import type { CodeCache } from './code-cache.ts'
import type { TakenCell } from './stem-cells.ts'
import { RunGuard } from './run-guard.ts'
import type { InstanceSpec, InvokeOptions } from './types.ts'
import {
  ChainDroppedError, FunctionError, ModuleLoadError, OutputError, StepCancelledError, StepCrashedError, StepOutOfMemoryError, StepTimeoutError,
  type StepError, type StepLocation
} from './errors.ts'

/** Why an instance could not start or died; turned into a StepError once we know which step suffered it. */
export type InstanceFailure =
  | { kind: 'load', message: string, stack?: string }
  | { kind: 'oom' }
  | { kind: 'crash', message: string, exitCode?: number }
  | { kind: 'terminated' }

export function failureToError (f: InstanceFailure, loc: StepLocation, spec: InstanceSpec): StepError {
  switch (f.kind) {
    case 'load': return new ModuleLoadError(loc, spec.code.cid, `module ${spec.code.cid} failed to load: ${f.message}`)
    case 'oom': return new StepOutOfMemoryError(loc, spec.memoryMb)
    case 'crash': return new StepCrashedError(loc, f.message, f.exitCode)
    case 'terminated': return new StepCancelledError(loc, 'instance terminated (worker pool stopped)')
  }
}

export interface RunResult {
  startedAt: number
  endedAt: number
  streams: Record<string, number>
}

export interface InstanceOptions {
  isolation: Isolation
  codeCache: CodeCache
  /** how long a function gets to react to ctx.signal before its worker is terminated */
  graceMs: number
  /** worker output and stray messages outside an invocation */
  log: (line: string) => void
  /** a stem cell to start in (process isolation, stem-cells.ts) instead of a fresh process */
  cell?: TakenCell
}

interface Running {
  inv: number
  opts: InvokeOptions
  guard: RunGuard
  loc: StepLocation
  resolve: (r: RunResult) => void
  reject: (e: Error) => void
  /** set once the run was timed out or cancelled; the run then ends when the worker exits */
  abortError?: StepError
  timers: Array<ReturnType<typeof setTimeout>>
  unlisten?: () => void
  /** a follower: called when it starts (its producer returned) */
  started?: () => void
}

let nextInv = 0

/** The invocation as the instance gets it. */
function invocation (r: Running): Record<string, unknown> {
  const { opts } = r
  return {
    inv: r.inv, exportName: opts.exportName, request: opts.request, step: opts.step, outputs: opts.outputs,
    ...(opts.preloaded !== undefined ? { inputs: opts.preloaded } : {})
  }
}

// Promise.withResolvers is not in Node 20 without the polyfill; the executor should not depend on load order
function defer<T> (): { promise: Promise<T>, resolve: (v: T) => void, reject: (e: unknown) => void } {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

/**
 * One instance (a worker thread or a child process, see channels.ts) that has loaded one module under a memory
 * limit; runs one invocation at a time.
 */
export class Instance {
  readonly spec: InstanceSpec
  readonly key: string
  /** never rejects: undefined when the module loaded, else why not */
  readonly ready: Promise<InstanceFailure | undefined>
  readonly exited: Promise<void>
  alive = true
  failure?: InstanceFailure
  private channel?: InstanceChannel
  private readonly options: InstanceOptions
  private running?: Running
  /** a follower queued behind the running invocation (follow()), until the instance says chained or unchained */
  private next?: Running
  private terminating = false
  private ref = true
  private readonly onReady: (f: InstanceFailure | undefined) => void
  private readonly onExited: () => void

  constructor (spec: InstanceSpec, key: string, options: InstanceOptions) {
    this.spec = spec
    this.key = key
    this.options = options
    const ready = defer<InstanceFailure | undefined>()
    this.ready = ready.promise
    this.onReady = ready.resolve
    const exited = defer<void>()
    this.exited = exited.promise
    this.onExited = () => { exited.resolve() }
    void this.start()
  }

  /** the instance's process id (process isolation, once started) */
  get pid (): number | undefined {
    return this.channel?.pid
  }

  private async start (): Promise<void> {
    const cell = this.options.cell
    let code
    try {
      code = await this.options.codeCache.file(this.spec.code)
      if (cell !== undefined) code = await cell.place(code)
    } catch (err) {
      this.failure = { kind: 'load', message: `cannot write the module to the code cache: ${(err as Error).message}` }
      await cell?.discard()
      this.ended()
      return
    }
    if (this.terminating) { await cell?.discard(); this.ended(); return }
    const handlers: ChannelHandlers = {
      message: msg => { this.onMessage(msg) },
      failure: f => { this.failure ??= f },
      exit: (code, signal) => {
        const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? '?'} (process.exit in user code?)`
        this.failure ??= this.terminating ? { kind: 'terminated' } : { kind: 'crash', message: `instance ${how}`, exitCode: code ?? undefined }
        this.ended()
      }
    }
    if (cell !== undefined) {
      this.channel = cell.adopt(handlers, code)
    } else {
      const open = this.options.isolation === 'process' ? processChannel : threadChannel
      this.channel = open({ code, memoryMb: this.spec.memoryMb, handlers })
    }
    if (!this.ref) this.channel.setRef(false)
  }

  private ended (): void {
    this.alive = false
    this.failure ??= { kind: 'terminated' }
    this.onReady(this.failure)
    const r = this.running
    if (r !== undefined) this.settle(r, r.abortError ?? failureToError(this.failure, r.loc, this.spec))
    this.dropNext()
    this.onExited()
  }

  /** the id of the invocation running now (follow() names it) */
  get runningInvocation (): number | undefined {
    return this.running?.inv
  }

  /** a follower is queued behind the running invocation */
  get linked (): boolean {
    return this.next !== undefined
  }

  /** running an invocation, or holding a follower for the running one */
  get busy (): boolean {
    return this.running !== undefined || this.next !== undefined
  }

  /** alive and not being terminated: only such an instance may take another invocation */
  get usable (): boolean {
    return this.alive && !this.terminating
  }

  /** idle workers must not keep the host process alive */
  setRef (ref: boolean): void {
    this.ref = ref
    this.channel?.setRef(ref)
  }

  async terminate (): Promise<void> {
    if (!this.alive) return
    this.terminating = true
    // not started yet: start() sees `terminating` and ends the instance without starting it
    await this.channel?.kill()
    await this.exited
  }

  private post (msg: unknown): void {
    this.channel?.post(msg)
  }

  run (opts: InvokeOptions): Promise<RunResult> {
    if (!this.alive || this.busy) throw new Error('instance is not available')
    const { promise, resolve, reject } = defer<RunResult>()
    const loc = { step: opts.step.name, index: opts.step.index }
    const r: Running = { inv: ++nextInv, opts, guard: new RunGuard(opts.outputs), loc, resolve, reject, timers: [] }
    this.running = r
    this.setRef(true)
    this.post({ type: 'invoke', ...invocation(r) })
    this.begin(r)
    return promise
  }

  /**
   * Queues `opts` to run here right after the running invocation returns successfully, with inputs `from` its
   * value outputs (input name -> output name); the instance says which way it went (instance-runtime.mjs).
   * undefined unless invocation `after` (runningInvocation) still runs here and has no follower yet.
   */
  follow (after: number, opts: InvokeOptions, from: Record<string, string>, started: () => void): { result: Promise<RunResult>, cancel: () => void } | undefined {
    const p = this.running
    if (!this.usable || p === undefined || p.inv !== after || p.abortError !== undefined || this.next !== undefined) return undefined
    const { promise, resolve, reject } = defer<RunResult>()
    const loc = { step: opts.step.name, index: opts.step.index }
    const r: Running = { inv: ++nextInv, opts, guard: new RunGuard(opts.outputs), loc, resolve, reject, timers: [], started }
    this.next = r
    this.post({ type: 'then', inv: p.inv, next: { ...invocation(r), from } })
    const cancel = (): void => { if (this.next === r) this.post({ type: 'unthen', inv: r.inv }) }
    const signal = opts.signal
    if (signal !== undefined) {
      if (signal.aborted) cancel()
      else {
        signal.addEventListener('abort', cancel, { once: true })
        r.unlisten = () => { signal.removeEventListener('abort', cancel) }
      }
    }
    return { result: promise, cancel }
  }

  /** The follower did not run: its caller invokes it elsewhere (or, cancelled, not at all). */
  private dropNext (): void {
    const n = this.next
    if (n === undefined) return
    this.next = undefined
    n.unlisten?.()
    n.reject(n.opts.signal?.aborted === true ? new StepCancelledError(n.loc) : new ChainDroppedError())
  }

  /** Timeout and cancel of a run that started. */
  private begin (r: Running): void {
    const { opts, loc } = r
    r.timers.push(setTimeout(() => { this.abort(r, new StepTimeoutError(loc, opts.timeoutMs)) }, opts.timeoutMs))
    const signal = opts.signal
    if (signal !== undefined) {
      const onAbort = (): void => { this.abort(r, new StepCancelledError(loc)) }
      if (signal.aborted) onAbort()
      else {
        signal.addEventListener('abort', onAbort, { once: true })
        r.unlisten = () => { signal.removeEventListener('abort', onAbort) }
      }
    }
  }

  /** ctx.signal aborts in the worker; after the grace period (or as soon as the function ends) the worker goes */
  private abort (r: Running, err: StepError): void {
    if (r.abortError !== undefined || this.running !== r) return
    r.abortError = err
    this.post({ type: 'abort', inv: r.inv, reason: err.name, message: err.message })
    // the kill waits one more poll phase (setImmediate runs after it): on a loaded host the function's 'done' or
    // 'fail' is often already waiting to be read when the timer fires, and then the instance is kept
    r.timers.push(setTimeout(() => { setImmediate(() => { if (this.running === r) void this.terminate() }) }, this.options.graceMs))
  }

  private settle (r: Running, result: RunResult | StepError): void {
    if (this.running !== r) return
    this.running = undefined
    for (const t of r.timers) clearTimeout(t)
    r.unlisten?.()
    if (result instanceof Error) r.reject(result)
    else r.resolve(result)
  }

  private callback (what: string, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.options.log(`host ${what} callback threw: ${(err as Error).stack ?? String(err)}`)
    }
  }

  private onMessage (msg: any): void {
    if (msg === null || typeof msg !== 'object') return
    if (msg.type === 'ready') { this.onReady(undefined); return }
    if (msg.type === 'load-error') {
      this.failure = { kind: 'load', message: RunGuard.text(msg.message), stack: typeof msg.stack === 'string' ? RunGuard.text(msg.stack) : undefined }
      this.onReady(this.failure)
      void this.terminate()
      return
    }
    if (msg.type === 'stray') { this.options.log(RunGuard.line(msg.line)); return }
    if (msg.type === 'crash') { this.failure ??= { kind: 'crash', message: RunGuard.text(msg.message) }; return }
    if (msg.type === 'chained' || msg.type === 'unchained') { this.chained(msg.type, msg.inv); return }
    const r = this.running
    if (r === undefined || msg.inv !== r.inv) return
    const { opts, loc, guard } = r
    if (msg.type === 'log') { this.callback('onLog', () => { opts.onLog(RunGuard.line(msg.line)) }); return }
    if (r.abortError !== undefined) {
      // the step has failed: drop its outputs. A function that ends within the grace (it heeded ctx.signal)
      // leaves its instance idle and clean (the runtime forgets a finished invocation), so the instance is kept:
      // cancels are routine in dataflow (a superseded claim, the end of a request) and killing the instance
      // made the next step on this peer wait for a cold start. Only one that overstays the grace is terminated.
      // (once the grace is over and the kill is under way, the exit settles the run instead)
      if ((msg.type === 'done' || msg.type === 'fail') && !this.terminating) this.settle(r, r.abortError)
      return
    }
    // every message is checked again here: user code can post to the host itself (see run-guard.ts)
    switch (msg.type) {
      case 'input':
        if (Number.isSafeInteger(msg.req)) this.answerInput(r, msg.req, RunGuard.text(msg.name))
        break
      case 'output': {
        const c = guard.output(msg.name, msg.value)
        if (!c.ok) { this.settle(r, new OutputError(loc, c.problem, c.output)); break }
        this.callback('onOutput', () => { opts.onOutput(c.value.name, c.value.value) })
        break
      }
      case 'mid-run':
        // only says when to announce what was posted: user code sending it itself changes no result
        this.callback('onMidRun', () => { opts.onMidRun?.() })
        break
      case 'emit': {
        const c = guard.emit(msg.name, msg.value)
        if (!c.ok) { this.settle(r, new OutputError(loc, c.problem, c.output)); break }
        this.callback('onEmit', () => { opts.onEmit(c.value.name, c.value.index, c.value.value) })
        break
      }
      case 'done': {
        const c = guard.done(msg.startedAt, msg.endedAt)
        this.settle(r, c.ok ? c.value : new OutputError(loc, c.problem, c.output))
        break
      }
      case 'fail':
        if (msg.kind === 'output') this.settle(r, new OutputError(loc, RunGuard.text(msg.message), typeof msg.output === 'string' ? msg.output : undefined))
        else if (msg.kind === 'load') {
          this.settle(r, new ModuleLoadError(loc, this.spec.code.cid, `module ${this.spec.code.cid}: ${RunGuard.text(msg.message)}`))
        } else this.settle(r, new FunctionError(loc, RunGuard.text(msg.message), typeof msg.stack === 'string' ? RunGuard.text(msg.stack) : undefined))
        break
    }
  }

  /**
   * The instance's answer to a follow(). A follower starts only once its producer has settled here (its done
   * comes first): a `chained` before that is not the runtime's and is ignored.
   */
  private chained (type: 'chained' | 'unchained', inv: unknown): void {
    const n = this.next
    if (n === undefined || inv !== n.inv) return
    if (type === 'unchained') {
      // the runtime forgets a link before it says so; should user code have said it instead, the link goes now,
      // so the instance cannot start the follower behind the host's back
      if (this.running !== undefined) this.post({ type: 'unthen', inv })
      this.dropNext()
      return
    }
    if (this.running !== undefined) return
    this.next = undefined
    n.unlisten?.()
    n.unlisten = undefined
    this.running = n
    this.begin(n)
    this.callback('started', () => { n.started?.() })
  }

  private answerInput (r: Running, req: number, name: string): void {
    const reply = (m: Record<string, unknown>): void => {
      if (this.running !== r || !this.alive) return
      try {
        this.post({ type: 'input-result', inv: r.inv, req, ...m })
      } catch (err) {
        this.post({ type: 'input-result', inv: r.inv, req, ok: false, message: `input ${name}: ${(err as Error).message}` })
      }
    }
    Promise.resolve()
      .then(async () => await r.opts.input(name))
      .then(value => { reply({ ok: true, value }) }, (err: Error) => { reply({ ok: false, message: err?.message ?? String(err) }) })
  }
}
