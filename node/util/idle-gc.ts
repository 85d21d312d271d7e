import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A garbage collection once the peer has gone quiet: after start-up, and when the scheduler lets go of its last
 * request. V8 grows the young generation to its cap (2 x 8 MiB with PEER_NODE_FLAGS' --max-semi-space-size=8)
 * under any burst, and a peer's start-up is one; it shrinks it again only in a GC that sees an allocation rate
 * under 1 KB/ms over its last few seconds. At rest almost nothing is allocated, so no GC comes, and V8's memory
 * reducer arms itself only after a full GC that grew the heap: an idle peer kept 16 MiB of new space for minutes
 * (16-peer testnets at rest: 107-109 MiB per peer, against 91-96 for the few peers whose memory reducer had run).
 * A scavenge and then a full GC in a quiet spell take it to 1 MiB and free what start-up or finished requests left
 * in the old generation (16-peer testnets at rest: 90-97 MiB per peer, all of them).
 *
 * A fixed delay is not enough: a peer of a network still forming is busy for tens of seconds, and a GC then
 * shrinks nothing. So once armed it looks every pollMs at how much the new space filled since the last look
 * (getHeapSpaceStatistics, a few microseconds) and collects after two spells in a row quieter than
 * quietBytesPerMs, for at most maxPolls looks. Nothing runs between a collection that gave the memory back and
 * the next arm().
 *
 * V8's memory reducer does the same job on its own schedule: 8 s after a full GC, and again every 8 s until the
 * allocation rate is low, two or three compacting GCs 500 ms apart. An idle peer's came 40-65 s after start (a
 * 4-peer testnet: 3 mark-compacts, about 0.2 s of CPU per peer, most of the idle CPU of the minute they fell
 * in), and after this class's own full GC it only re-ran it 8 s later. PEER_NODE_FLAGS turn it off
 * (--no-memory-reducer): this full GC, run once the peer is quiet, is the one.
 */
export interface IdleGcOptions {
  /** @default 1000 */
  pollMs?: number
  /** looks before giving up until the next arm(). @default 120 (two minutes) */
  maxPolls?: number
  /** allocation rate (new space) under which a spell counts as quiet; V8's own bar is 1000. @default 500 */
  quietBytesPerMs?: number
  /** collections per arm() at most (a GC that did not shrink the new space is tried again). @default 3 */
  maxRuns?: number
  /** for tests; by default V8's gc() (exposeGc): a full GC, or a scavenge with { type: 'minor' } */
  gc?: GcFunction
  /** for tests; by default V8's new space, committed and used */
  newSpace?: () => { size: number, used: number }
  /** for tests; by default Date.now */
  now?: () => number
  /** a line per look and per collection (the peer passes its debug logger, DEBUG=dflow:idle-gc) */
  log?: (format: string, ...args: unknown[]) => void
}

export type GcFunction = (opts?: { type: 'minor' | 'major' }) => void

/**
 * V8 shrinks the new space after a GC when the allocation rate of its last 5 s of samples (taken at GCs) is low:
 * a full GC 1 s after the scavenge still saw the busy seconds before it, shrank nothing, and sometimes grew the new
 * space (three full GCs in a row on a 4-peer testnet)
 */
const THROUGHPUT_WINDOW_MS = 5000

/** new space at or below this is V8's minimum (one 1 MiB page per semi-space, rounded): nothing to give back */
const SMALL_NEW_SPACE = 2 * 2 ** 20

export class IdleGc {
  private timer: NodeJS.Timeout | undefined
  private readonly opts: Required<Omit<IdleGcOptions, 'gc'>> & { gc: GcFunction | undefined }
  private polls = 0
  private runsThisArm = 0
  private last: { used: number, at: number } | undefined
  private quietLooks = 0
  /** a scavenge ran since arm() (collect()) */
  private sampled = false
  /** when the last collection ran (the next full GC waits THROUGHPUT_WINDOW_MS for V8's rate to see the quiet) */
  private gcAt = 0
  /** full GCs run so far (tests, diagnostics) */
  runs = 0

  constructor (opts: IdleGcOptions = {}) {
    this.opts = {
      pollMs: opts.pollMs ?? 1000,
      maxPolls: opts.maxPolls ?? 120,
      quietBytesPerMs: opts.quietBytesPerMs ?? 500,
      maxRuns: opts.maxRuns ?? 3,
      gc: opts.gc ?? exposeGc(),
      newSpace: opts.newSpace ?? newSpace,
      now: opts.now ?? Date.now,
      log: opts.log ?? (() => {})
    }
  }

  /** Start (or restart) looking for a quiet spell. */
  arm (): void {
    if (this.opts.gc === undefined) return
    this.polls = 0
    this.runsThisArm = 0
    this.last = undefined
    this.quietLooks = 0
    this.sampled = false
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
    const now = this.opts.now()
    const prev = this.last
    this.last = { used, at: now }
    // used below the last look: a scavenge ran in between, so the spell was not quiet enough to tell
    const rate = prev === undefined || used < prev.used ? undefined : (used - prev.used) / Math.max(1, now - prev.at)
    const quiet = rate !== undefined && rate < this.opts.quietBytesPerMs
    this.quietLooks = quiet ? this.quietLooks + 1 : 0
    this.opts.log('look %d: new space %d KiB, filling at %s B/ms', this.polls, Math.round(size / 1024), rate === undefined ? '?' : rate.toFixed(0))
    // two quiet spells in a row before the scavenge, one more before the full GC (see collect()); the full GC runs
    // even when V8 already shrank the new space itself: it is what frees the old generation's garbage, and with
    // PEER_NODE_FLAGS' --no-memory-reducer nothing else will until the heap grows again
    if (this.sampled ? this.quietLooks >= 1 && now - this.gcAt >= THROUGHPUT_WINDOW_MS : this.quietLooks >= 2) {
      this.quietLooks = 0
      if (this.collect(size)) return
    }
    if (++this.polls < this.opts.maxPolls) this.schedule()
  }

  /**
   * V8 shrinks the new space in a GC only if the allocation rate it measured since its previous GCs is low, and the
   * previous GC of an idle peer was in its last busy moment: a full GC then shrinks nothing (seen on 32-peer
   * testnets: 2 of 3 wasted). So first a scavenge (a few ms), which starts V8's measure afresh, and at the first
   * quiet look THROUGHPUT_WINDOW_MS later the full GC, which shrinks the new space and frees the old generation's garbage. When V8 already
   * shrank the new space in a scavenge of its own, the full GC comes at once.
   * True when done until the next arm().
   */
  private collect (size: number): boolean {
    // a new space V8 already shrank needs no scavenge first
    const major = this.sampled || size <= SMALL_NEW_SPACE
    const t0 = performance.now()
    this.opts.gc?.(major ? undefined : { type: 'minor' })
    const after = this.opts.newSpace()
    this.opts.log('%s GC in %s ms: new space %d -> %d KiB', major ? 'full' : 'young', (performance.now() - t0).toFixed(1), Math.round(size / 1024), Math.round(after.size / 1024))
    this.last = { used: after.used, at: this.opts.now() }
    this.gcAt = this.last.at
    this.sampled = true
    if (!major) return false
    this.runs++
    this.runsThisArm++
    return after.size <= SMALL_NEW_SPACE || this.runsThisArm >= this.opts.maxRuns
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
export function exposeGc (): GcFunction | undefined {
  const existing = (globalThis as { gc?: unknown }).gc
  if (typeof existing === 'function') return existing as GcFunction
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    return typeof gc === 'function' ? gc as GcFunction : undefined
  } catch {
    return undefined
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}
