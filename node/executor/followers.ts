import type { Logger } from '@libp2p/interface'
import type { Instance } from './instance.ts'
import { checkInvokeLimits, type FunctionLimits } from './limits.ts'
import type { FollowFn, InvokeOptions, InvokeResult } from './types.ts'

/** What the follower book needs of its pool. */
export interface FollowersHost {
  /** whether the pool takes no more work, or invocations wait for a slot (a follower would overtake them) */
  closed: () => boolean
  limits: Partial<FunctionLimits>
  releaseSlot: () => void
  /** an invocation on the instance ended: it may go idle */
  ended: (inst: Instance) => void
  /** the instance key of a spec */
  keyOf: (opts: InvokeOptions) => string
  /** a follower started on the instance: a successor may now queue behind it */
  startedOn: (inst: Instance) => void
  log: Logger
}

/**
 * The pool's followers (InvokeOptions.onRunning): at most one per instance, queued behind the invocation running
 * there, then running there on that invocation's slot. `owed`: the invocation before it ended and left it its slot,
 * so a chain holds one slot from its first step to its last.
 */
interface FollowerRecord {
  settled: boolean
  owed: boolean
  cancel: () => void
  /** an invocation that only waited for a slot (not for the outputs of the one before it) */
  successor: boolean
  /** a successor not started yet: taken back when a slot frees elsewhere */
  waiting: boolean
}

export class Followers {
  private readonly records = new Map<Instance, FollowerRecord>()
  /** followers that started in their producer's instance */
  started = 0
  /** of those, successors: invocations that waited for a slot in a busy instance, not for its outputs */
  successorsStarted = 0

  constructor (private readonly host: FollowersHost) {}

  /** Gives the caller the way to queue a follower behind the invocation now running on `inst`. */
  running (opts: InvokeOptions, inst: Instance): void {
    try {
      opts.onRunning?.(this.followOn(inst))
    } catch (err) {
      this.host.log.error('onRunning callback threw: %s', (err as Error).message)
    }
  }

  private followOn (inst: Instance): FollowFn {
    const after = inst.runningInvocation ?? -1
    return (opts, from) => {
      if (this.host.closed()) return undefined
      return this.link(inst, after, opts, from, false)
    }
  }

  /**
   * Queues an invocation that waits for a slot (all its inputs exist) behind invocation `after` running on `inst`:
   * it starts there the moment that one returns, on its slot, without a round trip through the host (the wait for
   * the done message and the next invocation's message costs a busy peer ~10 ms per wave of a wide fan). Rejects
   * with ChainDroppedError when it did not run there; undefined when it cannot be queued there now.
   */
  successor (inst: Instance, after: number, opts: InvokeOptions): { result: Promise<InvokeResult> } | undefined {
    return this.link(inst, after, opts, {}, true)
  }

  /**
   * A slot came free while invocations wait in busy instances: the one queued last goes back to its caller, who
   * takes the slot (its predecessor may run for long). Whether there was one.
   */
  takeBack (): boolean {
    let last: FollowerRecord | undefined
    for (const rec of this.records.values()) if (rec.waiting && !rec.settled) last = rec
    if (last === undefined) return false
    last.waiting = false
    last.cancel()
    return true
  }

  private link (inst: Instance, after: number, opts: InvokeOptions, from: Record<string, string>, successor: boolean): { result: Promise<InvokeResult>, cancel: () => void } | undefined {
    if (this.host.keyOf(opts) !== inst.key) return undefined
    try { checkInvokeLimits(opts, this.host.limits) } catch { return undefined }
    const rec: FollowerRecord = { settled: false, owed: false, cancel: () => {}, successor, waiting: successor }
    const h = inst.follow(after, opts, from, () => {
      this.started++
      if (successor) this.successorsStarted++
      rec.waiting = false
      if (opts.onRunning !== undefined) this.running(opts, inst)
      this.host.startedOn(inst)
    })
    if (h === undefined) return undefined
    rec.cancel = h.cancel
    this.records.set(inst, rec)
    const result = h.result.then(r => ({ coldStartMs: 0, ...r }))
    const end = (): void => {
      rec.settled = true
      if (this.records.get(inst) === rec) this.records.delete(inst)
      if (rec.owed) this.passSlot(inst)
      this.host.ended(inst)
    }
    result.then(end, end)
    return { result, cancel: h.cancel }
  }

  /** An invocation on `inst` ended: its slot passes to the follower queued or running there, else it is free. */
  passSlot (inst: Instance | undefined): void {
    const f = inst === undefined ? undefined : this.records.get(inst)
    if (f !== undefined && !f.settled && !f.owed) f.owed = true
    else this.host.releaseSlot()
  }

  /**
   * Every slot is taken and invocations wait: queued followers go back to their callers and take their turn
   * (successors were the queue's head when they were queued: they stay).
   */
  giveBack (): void {
    for (const f of this.records.values()) if (!f.settled && !f.successor) f.cancel()
  }
}
