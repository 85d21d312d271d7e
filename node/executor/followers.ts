import type { Logger } from '@libp2p/interface'
import type { Instance } from './instance.ts'
import { checkInvokeLimits, type FunctionLimits } from './limits.ts'
import type { FollowFn, InvokeOptions } from './types.ts'

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
  log: Logger
}

/**
 * The pool's followers (InvokeOptions.onRunning): at most one per instance, queued behind the invocation running
 * there, then running there on that invocation's slot. `owed`: the invocation before it ended and left it its slot,
 * so a chain holds one slot from its first step to its last.
 */
export class Followers {
  private readonly records = new Map<Instance, { settled: boolean, owed: boolean, cancel: () => void }>()
  /** followers that started in their producer's instance */
  started = 0

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
      if (this.host.closed() || this.host.keyOf(opts) !== inst.key) return undefined
      try { checkInvokeLimits(opts, this.host.limits) } catch { return undefined }
      const rec = { settled: false, owed: false, cancel: () => {} }
      const h = inst.follow(after, opts, from, () => {
        this.started++
        if (opts.onRunning !== undefined) this.running(opts, inst)
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
  }

  /** An invocation on `inst` ended: its slot passes to the follower queued or running there, else it is free. */
  passSlot (inst: Instance | undefined): void {
    const f = inst === undefined ? undefined : this.records.get(inst)
    if (f !== undefined && !f.settled && !f.owed) f.owed = true
    else this.host.releaseSlot()
  }

  /** Every slot is taken and invocations wait: queued followers go back to their callers and take their turn. */
  giveBack (): void {
    for (const f of this.records.values()) if (!f.settled) f.cancel()
  }
}
