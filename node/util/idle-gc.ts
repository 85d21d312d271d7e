import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A garbage collection once the peer has gone quiet: after start-up, and when the scheduler lets go of its last
 * request. V8 grows the young generation to its cap (2 x 8 MiB with PEER_NODE_FLAGS' --max-semi-space-size=8)
 * under any burst, and a peer's start-up is one; it shrinks it again only in a GC that sees an allocation rate
 * under 1 KB/ms over its last few seconds. At rest almost nothing is allocated, so no GC comes, and V8's memory
 * reducer arms itself only after a full GC that grew the heap: an idle peer kept 16 MiB of new space for minutes
 * (16-peer testnets at rest: 107-109 MiB per peer, against 91-96 for the few peers whose memory reducer had run).
 * One full GC in a quiet spell takes it to 1 MiB and frees what finished requests left in the old generation.
 *
 * A fixed delay is not enough: a peer of a network still forming is busy for tens of seconds, and a GC then
 * shrinks nothing. So once armed it looks every pollMs at how much the new space filled since the last look
 * (getHeapSpaceStatistics, a few microseconds) and collects after two spells in a row quieter than
 * quietBytesPerMs, for at most maxPolls looks. Nothing runs between a collection that gave the memory back and the next arm().
 */
export interface IdleGcOptions {
  /** @default 3000 */
  pollMs?: number
  /** looks before giving up until the next arm(). @default 40 (two minutes) */
  maxPolls?: number
  /** allocation rate (new space) under which a spell counts as quiet; V8's own bar is 1000. @default 500 */
  quietBytesPerMs?: number
  /** collections per arm() at most (a GC that did not shrink the new space is tried again). @default 3 */
  maxRuns?: number
  /** for tests; by default V8's gc() (exposeGc) */
  gc?: () => void
  /** for tests; by default V8's new space, committed and used */
  newSpace?: () => { size: number, used: number }
  /** for tests; by default Date.now */
  now?: () => number
}

/** new space at or below this is V8's minimum (one 1 MiB page per semi-space, rounded): nothing to give back */
const SMALL_NEW_SPACE = 2 * 2 ** 20

export class IdleGc {
  private timer: NodeJS.Timeout | undefined
  private readonly opts: Required<Omit<IdleGcOptions, 'gc'>> & { gc: (() => void) | undefined }
  private polls = 0
  private runsThisArm = 0
  private last: { used: number, at: number } | undefined
  private quietLooks = 0
  /** GCs run so far (tests, diagnostics) */
  runs = 0

  constructor (opts: IdleGcOptions = {}) {
    this.opts = {
      pollMs: opts.pollMs ?? 3000,
      maxPolls: opts.maxPolls ?? 40,
      quietBytesPerMs: opts.quietBytesPerMs ?? 500,
      maxRuns: opts.maxRuns ?? 3,
      gc: opts.gc ?? exposeGc(),
      newSpace: opts.newSpace ?? newSpace,
      now: opts.now ?? Date.now
    }
  }

  /** Start (or restart) looking for a quiet spell. */
  arm (): void {
    if (this.opts.gc === undefined) return
    this.polls = 0
    this.runsThisArm = 0
    this.last = undefined
    this.quietLooks = 0
    if (this.timer === undefined) this.schedule()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule (): void {
    this.timer = setTimeout(() => { this.poll() }, this.opts.pollMs)
    // never what keeps the process alive
    this.timer.unref()
  }

  private poll (): void {
    this.timer = undefined
    const { size, used } = this.opts.newSpace()
    if (size <= SMALL_NEW_SPACE) return
    const now = this.opts.now()
    const prev = this.last
    this.last = { used, at: now }
    // used below the last look: a scavenge ran in between, so the spell was not quiet enough to tell
    const quiet = prev !== undefined && used >= prev.used && (used - prev.used) / Math.max(1, now - prev.at) < this.opts.quietBytesPerMs
    this.quietLooks = quiet ? this.quietLooks + 1 : 0
    // two quiet spells in a row: V8 judges its rate over its last ~5 s, and a GC it finds too busy shrinks nothing
    if (this.quietLooks >= 2) {
      this.quietLooks = 0
      this.opts.gc?.()
      this.runs++
      this.runsThisArm++
      this.last = undefined
      if (this.opts.newSpace().size <= SMALL_NEW_SPACE || this.runsThisArm >= this.opts.maxRuns) return
    }
    if (++this.polls < this.opts.maxPolls) this.schedule()
  }
}

function newSpace (): { size: number, used: number } {
  const s = getHeapSpaceStatistics().find(s => s.space_name === 'new_space')
  return { size: s?.space_size ?? 0, used: s?.space_used_size ?? 0 }
}

/**
 * V8's gc(), without --expose-gc on the command line: the flag is set, read by a new context's set-up, and unset
 * again so that contexts made later (function workers) do not get it. Jest's --logHeapUsage does the same.
 * Undefined where the runtime refuses.
 */
export function exposeGc (): (() => void) | undefined {
  const existing = (globalThis as { gc?: unknown }).gc
  if (typeof existing === 'function') return existing as () => void
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    return typeof gc === 'function' ? gc as () => void : undefined
  } catch {
    return undefined
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}
