import { performance } from 'node:perf_hooks'
import { defaultLogger } from '@libp2p/logger'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import { Instance, failureToError } from './instance.ts'
import { ChainDroppedError, PoolStoppedError, StepCancelledError, StepTimeoutError, type StepLocation } from './errors.ts'
import { SlotQueue, type Behind } from './slot-queue.ts'
import { CodeCache } from './code-cache.ts'
import { InstanceHolds } from './holds.ts'
import type { Isolation } from './channels.ts'
import { checkInvokeLimits, type FunctionLimits } from './limits.ts'
import type { InstanceSpec, InvokeOptions, InvokeResult } from './types.ts'
import { Followers } from './followers.ts'
import { ColdWaiters } from './cold-waiters.ts'
import { listOf, remove } from './key-lists.ts'
import { StemCells } from './stem-cells.ts'
import { RecentPeak } from './recent-peak.ts'

export interface WorkerPoolOptions {
  /** max concurrently running invocations; more wait in a queue (earliest InvokeOptions.startBy first, else FIFO). @default 4 */
  slots?: number
  /** idle instances are retired after this long. @default 60000 */
  idleMs?: number
  /** beyond this many idle instances (all specs together) the longest-idle one is retired. @default 64 */
  maxIdleInstances?: number
  /** how long a timed-out or cancelled function gets to react to ctx.signal before its worker is terminated. @default 200 */
  graceMs?: number
  /**
   * The peer's private code cache (0700), where module code is written for import(): DATA/code for a peer with a
   * data dir. @default a fresh private directory under os.tmpdir(), removed by stop()
   */
  codeDir?: string
  /** 'process': child processes under Node's permission model; 'thread': worker threads. @default 'thread' */
  isolation?: Isolation
  /**
   * Process isolation: instance processes kept booted ahead per memory size in use (stem-cells.ts), so a cold
   * start costs the module's load and not a Node boot. At least this many; more when the pool recently started
   * more instances at once (up to 8 x slots). 0: none. @default 0
   */
  stemCells?: number
  /** an invocation over these is refused (the loader refuses such workflows earlier, with the same limits) */
  limits?: Partial<FunctionLimits>
  logger?: ComponentLogger
}

export interface PoolStats {
  /** live workers: starting + idle + busy (+ ones being terminated) */
  instances: number
  idle: number
  busy: number
  starting: number
  /** invocations waiting for a slot */
  queued: number
  coldStarts: number
  warmStarts: number
  /** timed-out or cancelled invocations whose function ended within the grace: their instance stayed warm */
  abortsKept: number
  /** timed-out or cancelled invocations that cost their instance (the function overstayed the grace, or it was loading and hung) */
  abortsTerminated: number
  /** instances started since the pool was made (prewarmed or not) */
  instanceStarts: number
  /** instances kept from retirement by holds (idle past idleMs while a holder still wants them) */
  heldIdle: number
  /** invocations that started in their producer's instance right after it returned (InvokeOptions.onRunning) */
  chainedStarts: number
  /** invocations that waited for a slot queued in a busy instance and started there the moment it returned */
  successorStarts: number
  /** stem cells booted and waiting for a module now (process isolation) */
  stemCells: number
  /** instances started in a stem cell (of instanceStarts) */
  stemCellStarts: number
}

/**
 * Stem cells per slot at most: a dataflow start peer pre-warms the steps planned on it at once (24 instances for a
 * per-step epigenomics request on 4 slots), and a start that finds no cell boots beside the others' loads.
 */
const MAX_CELLS_PER_SLOT = 8
/** how long a burst of instance starts is remembered when sizing the stem cells */
const BURST_WINDOW_MS = 10 * 60_000

export function instanceKey (spec: InstanceSpec): string {
  return `${spec.code.cid}:${spec.memoryMb}`
}

/**
 * The peer's pool of instances (worker threads or child processes, by `isolation`) that run step functions.
 * Instances are keyed by module cid + memory limit and reused warm across requests; a function that crashes,
 * hangs or runs out of memory only costs its own instance.
 */
export class WorkerPool {
  private readonly slots: number
  private readonly idleMs: number
  private readonly maxIdle: number
  private readonly graceMs: number
  private readonly codeCache: CodeCache
  readonly isolation: Isolation
  private readonly limits: Partial<FunctionLimits>
  private readonly log: Logger
  private readonly all = new Set<Instance>()
  /** idle instances per key; the most recently used is taken first so the others can expire */
  private readonly idle = new Map<string, Instance[]>()
  private readonly idleSince = new Map<Instance, { at: number, timer: ReturnType<typeof setTimeout> }>()
  /** prewarmed instances still loading that no invocation has claimed yet */
  private readonly unclaimed = new Map<string, Instance[]>()
  /** instances holders (requests) pre-warmed and still want: not retired for idleness while held (see prewarm) */
  private readonly holds = new InstanceHolds()
  /** idle instances whose idle timer fired while held: looked at again when a hold of their key goes */
  private readonly overdue = new Set<Instance>()
  private instanceStarts = 0
  private readonly queue: SlotQueue
  private coldStarts = 0
  private warmStarts = 0
  private abortsKept = 0
  private abortsTerminated = 0
  /** followers queued behind running invocations (followers.ts) */
  private readonly followers: Followers
  /** instances a waiter was just queued behind (runAfter is reading its inputs): one waiter per instance */
  private readonly reserved = new Set<Instance>()
  /** invocations waiting for a cold instance, which take one of their module that comes idle first */
  private readonly coldWaiters = new ColdWaiters()
  private stopped = false
  private readonly cells: StemCells
  /** instances whose module is still loading (a stem cell refill waits for none) */
  private loading = 0
  /** the most instances loading at once lately: how many stem cells a burst of starts needs */
  private readonly burst = new RecentPeak(BURST_WINDOW_MS)

  constructor (opts: WorkerPoolOptions = {}) {
    this.slots = Math.max(1, opts.slots ?? 4)
    this.idleMs = opts.idleMs ?? 60_000
    this.maxIdle = opts.maxIdleInstances ?? 64
    this.graceMs = opts.graceMs ?? 200
    this.codeCache = new CodeCache(opts.codeDir)
    this.isolation = opts.isolation ?? 'thread'
    this.limits = opts.limits ?? {}
    this.log = (opts.logger ?? defaultLogger()).forComponent('dflow:executor')
    this.cells = new StemCells({
      target: () => {
        const least = this.isolation === 'process' ? Math.max(0, opts.stemCells ?? 0) : 0
        return least === 0 ? 0 : Math.min(MAX_CELLS_PER_SLOT * this.slots, Math.max(least, this.burst.peak()))
      },
      directory: async () => await this.codeCache.directory(),
      busy: () => this.loading > 0,
      log: this.log
    })
    this.followers = new Followers({
      // a follower keeps its producer's slot: while invocations wait for one, it would overtake them (FIFO)
      closed: () => this.stopped || this.queue.length > 0,
      limits: this.limits,
      releaseSlot: () => { this.queue.release() },
      ended: inst => { if (inst.usable && !inst.busy) this.makeIdle(inst) },
      keyOf: o => instanceKey(o.spec),
      startedOn: () => { this.queue.placeHead() },
      log: this.log
    })
    this.queue = new SlotQueue(this.slots, {
      queued: () => { this.followers.giveBack() },
      // one waiting in a busy instance takes the free slot instead (what it waits for may run for long)
      freed: () => { this.followers.takeBack() },
      behind: key => {
        if (this.stopped) return undefined
        for (const inst of this.all) {
          const after = inst.runningInvocation
          if (inst.key !== key || after === undefined || !inst.usable || inst.linked || this.reserved.has(inst)) continue
          this.reserved.add(inst)
          return { inst, after }
        }
        return undefined
      }
    })
  }

  /**
   * Starts instances ahead so later invocations find them warm: makes sure `count` instances of the spec are idle
   * or loading unclaimed, without ever holding more than `slots` instances of one spec (more could never run at
   * once, and every extra worker costs a V8 isolate of CPU on a small machine). Resolves when they are ready;
   * never rejects (a module that fails to load fails the invocation that takes the instance, or is only logged).
   *
   * With a `holder` (a request id), up to `count` live instances of the spec are also kept from retirement for
   * idleness until `release(holder)`: an instance warmed at a request's start for a step that fires seconds later
   * would otherwise be retired by a short idleMs first, and the step would meet the cold start anyway.
   */
  async prewarm (spec: InstanceSpec, count = 1, holder?: string): Promise<void> {
    if (this.stopped) return
    if (this.limits.maxMemoryMb !== undefined && spec.memoryMb > this.limits.maxMemoryMb) return
    const key = instanceKey(spec)
    if (holder !== undefined) this.holds.add(key, holder, count)
    const have = (this.idle.get(key)?.length ?? 0) + (this.unclaimed.get(key)?.length ?? 0)
    let total = 0
    // instances being retired do not count: they will never run anything
    for (const inst of this.all) if (inst.key === key && inst.usable) total++
    const started: Instance[] = []
    for (let i = have; i < count && total < this.slots; i++, total++) {
      const inst = this.spawn(spec)
      listOf(this.unclaimed, key).push(inst)
      started.push(inst)
      void inst.ready.then(failure => {
        if (!remove(this.unclaimed, key, inst)) return
        if (failure === undefined) this.makeIdle(inst)
        else if (failure.kind !== 'terminated') this.log.error('prewarm of %s failed: %o', key, failure)
      })
    }
    await Promise.all(started.map(async i => { await i.ready }))
  }

  async invoke (opts: InvokeOptions): Promise<InvokeResult> {
    const loc: StepLocation = { step: opts.step.name, index: opts.step.index }
    if (this.stopped) throw new PoolStoppedError()
    checkInvokeLimits(opts, this.limits)
    const behind = await this.queue.acquire(opts.signal, loc, opts.startBy, opts.queueInInstance === true ? instanceKey(opts.spec) : undefined)
    opts.onPhase?.('slot', Date.now())
    if (behind !== undefined) {
      const r = await this.runAfter(behind, opts)
      if (r !== undefined) return r
      // it did not run there (the one before it failed, or a slot came free elsewhere): a turn as usual
      await this.queue.acquire(opts.signal, loc, opts.startBy)
      opts.onPhase?.('slot', Date.now())
    }
    let holding = true
    let ran: Instance | undefined
    const ready = opts.inputReady
    if (ready !== undefined) {
      const input = opts.input
      opts = {
        ...opts,
        input: async (name: string) => {
          if (ready(name) || !holding) return input(name)
          // waiting for data is not running: the slot goes to whoever can run, and is taken back to go on
          holding = false
          this.queue.release()
          try {
            return await input(name)
          } finally {
            await this.queue.acquire(opts.signal, loc, opts.startBy)
            holding = true
          }
        }
      }
    }
    try {
      if (opts.preload !== undefined) {
        const more = await opts.preload()
        if (more !== undefined) opts = { ...opts, preloaded: { ...opts.preloaded, ...more } }
      }
      if (this.stopped) throw new PoolStoppedError()
      if (opts.signal?.aborted === true) throw new StepCancelledError(loc)
      const t0 = performance.now()
      const taken = this.take(opts.spec)
      let inst = taken.inst
      let coldStartMs = 0
      if (taken.warm) this.warmStarts++
      else {
        this.coldStarts++
        const wait = this.coldWaiters.wait(inst.key)
        let used: Instance | undefined
        try {
          used = await this.waitReady(inst, opts, loc, wait.offered)
        } finally {
          const spare = wait.end(used)
          if (spare !== undefined) this.makeIdle(spare)
        }
        if (used === inst) coldStartMs = performance.now() - t0
        else { inst = used; this.coldStarts--; this.warmStarts++ }
      }
      try {
        opts.onPhase?.('posted', Date.now())
        const running = inst.run(opts)
        ran = inst
        if (opts.onRunning !== undefined) this.followers.running(opts, inst)
        this.queue.placeHead()
        const r = await running
        return { coldStartMs, ...r }
      } catch (err) {
        if (err instanceof StepCancelledError || err instanceof StepTimeoutError) {
          if (inst.usable) this.abortsKept++
          else this.abortsTerminated++
        }
        throw err
      } finally {
        if (inst.usable && !inst.busy) this.makeIdle(inst)
      }
    } finally {
      if (holding) this.followers.passSlot(ran)
    }
  }


  /**
   * The holder no longer needs what it prewarmed: its holds go, and an instance kept only by them that has been
   * idle for idleMs already is retired now (the hold protected it while the request ran, not beyond).
   */
  release (holder: string): void {
    for (const key of this.holds.release(holder)) for (const inst of [...this.overdue]) if (inst.key === key) this.expire(inst)
  }

  stats (): PoolStats {
    let idle = 0
    for (const l of this.idle.values()) idle += l.length
    let busy = 0
    for (const i of this.all) if (i.busy) busy++
    let starting = 0
    for (const l of this.unclaimed.values()) starting += l.length
    return {
      instances: this.all.size, idle, busy, starting, queued: this.queue.length, coldStarts: this.coldStarts, warmStarts: this.warmStarts + this.followers.started,
      abortsKept: this.abortsKept, abortsTerminated: this.abortsTerminated, instanceStarts: this.instanceStarts, heldIdle: this.overdue.size,
      chainedStarts: this.followers.started - this.followers.successorsStarted, successorStarts: this.followers.successorsStarted,
      stemCells: this.cells.size, stemCellStarts: this.cells.taken
    }
  }

  /** Terminates every worker (running invocations fail), rejects queued ones, clears timers. */
  async stop (): Promise<void> {
    this.stopped = true
    this.queue.rejectAll(new PoolStoppedError())
    for (const { timer } of this.idleSince.values()) clearTimeout(timer)
    this.idleSince.clear()
    this.idle.clear()
    this.unclaimed.clear()
    this.holds.clear()
    this.overdue.clear()
    this.coldWaiters.clear()
    await Promise.all([...this.all].map(async i => { await i.terminate() }))
    await this.cells.stop()
    await this.codeCache.close()
  }

  /** the pids of the live instance processes (process isolation), for tests and diagnostics */
  pids (): number[] {
    return [...this.all].flatMap(i => i.pid === undefined || !i.alive ? [] : [i.pid])
  }

  /** the pids of the idle stem cells (process isolation), for tests and diagnostics */
  stemCellPids (): number[] {
    return this.cells.pids()
  }

  private spawn (spec: InstanceSpec): Instance {
    const inst = new Instance(spec, instanceKey(spec), {
      isolation: this.isolation,
      codeCache: this.codeCache,
      graceMs: this.graceMs,
      log: (line) => { this.log('[%s] %s', spec.code.cid, line) },
      cell: this.isolation === 'process' ? this.cells.take(spec.memoryMb) : undefined
    })
    this.all.add(inst)
    this.instanceStarts++
    this.burst.note(++this.loading)
    void inst.ready.then(() => { this.loading-- })
    void inst.exited.then(() => {
      this.all.delete(inst)
      this.unIdle(inst)
      remove(this.unclaimed, inst.key, inst)
    })
    return inst
  }

  private take (spec: InstanceSpec): { inst: Instance, warm: boolean } {
    const key = instanceKey(spec)
    const idle = this.idle.get(key)
    while (idle !== undefined && idle.length > 0) {
      const inst = idle[idle.length - 1]
      this.unIdle(inst)
      if (inst.usable) return { inst, warm: true }
    }
    const pending = this.unclaimed.get(key)
    if (pending !== undefined && pending.length > 0) {
      const inst = pending.shift() as Instance
      if (pending.length === 0) this.unclaimed.delete(key)
      return { inst, warm: false }
    }
    return { inst: this.spawn(spec), warm: false }
  }

  /**
   * The load is bounded by the step's timeout and its signal too: a module that hangs at top level is a hang,
   * and its instance goes. A cancel is not the module's fault: the instance loads on, unclaimed, and becomes
   * idle for the next invocation (dataflow cancels runs routinely; killing the instance made a cold start later).
   */
  private async waitReady (inst: Instance, opts: InvokeOptions, loc: StepLocation, offered: Promise<Instance>): Promise<Instance> {
    let timer: ReturnType<typeof setTimeout> | undefined
    let onAbort: (() => void) | undefined
    const stopper = new Promise<StepTimeoutError | StepCancelledError>((resolve) => {
      timer = setTimeout(() => { resolve(new StepTimeoutError(loc, opts.timeoutMs, `module did not load within ${opts.timeoutMs} ms`)) }, opts.timeoutMs)
      onAbort = () => { resolve(new StepCancelledError(loc, 'cancelled while the instance was starting')) }
      if (opts.signal?.aborted === true) onAbort()
      else opts.signal?.addEventListener('abort', onAbort, { once: true })
    })
    try {
      const outcome = await Promise.race([inst.ready, stopper, offered])
      // a warm instance of the module came idle first: the one loading becomes idle when ready, for the next
      if (outcome instanceof Instance) {
        this.giveBack(inst)
        return outcome
      }
      if (outcome instanceof StepCancelledError) {
        this.giveBack(inst)
        throw outcome
      }
      if (outcome instanceof Error) {
        this.abortsTerminated++
        await inst.terminate()
        throw outcome
      }
      if (outcome !== undefined) throw failureToError(outcome, loc, opts.spec)
      return inst
    } finally {
      clearTimeout(timer)
      if (onAbort !== undefined) opts.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** An instance taken while it was still loading, not used after all: idle once it is ready, like a prewarmed one. */
  private giveBack (inst: Instance): void {
    if (this.stopped || !inst.usable) return
    listOf(this.unclaimed, inst.key).push(inst)
    void inst.ready.then(failure => {
      if (!remove(this.unclaimed, inst.key, inst)) return
      if (failure === undefined) this.makeIdle(inst)
    })
  }

  private makeIdle (inst: Instance): void {
    if (this.stopped || !inst.usable) { void inst.terminate(); return }
    // an invocation and the follower dropped behind it can both end in one tick and both find it free
    if (this.idleSince.has(inst) || inst.busy) return
    if (this.coldWaiters.offer(inst)) return
    inst.setRef(false)
    listOf(this.idle, inst.key).push(inst)
    const timer = setTimeout(() => { this.expire(inst) }, this.idleMs)
    timer.unref()
    this.idleSince.set(inst, { at: performance.now(), timer })
    while (this.idleSince.size > this.maxIdle) {
      let oldest: Instance | undefined
      let at = Infinity
      for (const [i, s] of this.idleSince) if (s.at < at) { at = s.at; oldest = i }
      if (oldest === undefined) break
      this.retire(oldest)
    }
  }

  /** An idle instance's idle time is up: retired, unless a hold on its key still wants it (then overdue). */
  private expire (inst: Instance): void {
    this.overdue.delete(inst)
    if (!this.idleSince.has(inst)) return
    if (this.held(inst.key)) { this.overdue.add(inst); return }
    this.retire(inst)
  }

  /** Whether holds of the key want at least as many instances as are alive (so none of them may go). */
  private held (key: string): boolean {
    const want = this.holds.want(key)
    if (want === 0) return false
    let live = 0
    for (const inst of this.all) if (inst.key === key && inst.usable) live++
    return live <= Math.min(want, this.slots)
  }

  private unIdle (inst: Instance): void {
    const s = this.idleSince.get(inst)
    if (s !== undefined) clearTimeout(s.timer)
    this.idleSince.delete(inst)
    this.overdue.delete(inst)
    remove(this.idle, inst.key, inst)
  }

  private retire (inst: Instance): void {
    this.unIdle(inst)
    this.log('retiring idle instance %s', inst.key)
    void inst.terminate()
  }

  /** Runs the invocation in `behind`'s instance once its invocation returns; undefined when it did not run there. */
  private async runAfter (behind: Behind, opts: InvokeOptions): Promise<InvokeResult | undefined> {
    try {
      // its inputs are read now, not when it runs: at most one such invocation per instance holds them
      const more = opts.preload === undefined ? undefined : await opts.preload()
      const o = more === undefined ? opts : { ...opts, preloaded: { ...opts.preloaded, ...more } }
      if (this.stopped) throw new PoolStoppedError()
      opts.onPhase?.('posted', Date.now())
      const link = this.followers.successor(behind.inst, behind.after, o)
      this.reserved.delete(behind.inst)
      if (link === undefined) return undefined
      return await link.result
    } catch (err) {
      if (err instanceof ChainDroppedError) return undefined
      throw err
    } finally {
      this.reserved.delete(behind.inst)
    }
  }
}
