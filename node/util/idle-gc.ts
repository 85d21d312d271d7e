import { constants, PerformanceObserver } from 'node:perf_hooks'
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
  /** the full GC compacts the whole old generation (see compacting()). @default true */
  compact?: boolean
  /** for tests; by default Math.random (each wait is pollMs +-25%, so peers that went idle together do not collect together) */
  random?: () => number
  /** for tests; by default V8's gc() (exposeGc): a full GC, or a scavenge with { type: 'minor' } */
  gc?: GcFunction
  /** for tests; by default V8's new space, committed and used */
  newSpace?: () => NewSpace
  /** for tests; by default the scavenges V8 reported so far (a PerformanceObserver on 'gc' entries) */
  scavenges?: () => number
  /** for tests; by default V8's old space, used bytes */
  oldUsed?: () => number
  /** old-space growth since the last full GC (of this IdleGc) that is worth a collection. @default 4 MiB */
  oldGrowthBytes?: number
  /** for tests; by default Date.now */
  now?: () => number
  /** a line per look and per collection (the peer passes its debug logger, DEBUG=dflow:idle-gc) */
  log?: (format: string, ...args: unknown[]) => void
  /**
   * called afterGcDelayMs after each full GC (the peer passes glibc's malloc_trim: node/util/malloc-trim.ts). Not
   * at once: V8 sweeps and unmaps the pages a full GC freed on background threads, and what they free only then
   * reaches malloc's free lists
   */
  afterGc?: () => void
  /** @default 1000 */
  afterGcDelayMs?: number
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
  private afterTimer: NodeJS.Timeout | undefined
  private readonly opts: Required<Omit<IdleGcOptions, 'gc' | 'afterGc'>> & { gc: GcFunction | undefined, afterGc: (() => void) | undefined }
  private polls = 0
  private runsThisArm = 0
  private last: Look | undefined
  private quietLooks = 0
  /** a scavenge ran since arm() (collect()) */
  private sampled = false
  /** when the last collection ran (the full GC waits THROUGHPUT_WINDOW_MS after the scavenge for V8's rate to see the quiet) */
  private gcAt = 0
  /** old space used right after this IdleGc's last full GC (undefined before the first) */
  private oldAfterGc: number | undefined
  /** full GCs run so far (the peer's dflow_idle_gc_runs_total, tests) */
  runs = 0
  /** Date.now() of the last full GC (the peer's dflow_idle_gc_last_run_timestamp_seconds), 0 before the first */
  lastRunAt = 0

  constructor (opts: IdleGcOptions = {}) {
    this.opts = {
      pollMs: opts.pollMs ?? 1000,
      maxPolls: opts.maxPolls ?? 120,
      quietBytesPerMs: opts.quietBytesPerMs ?? 500,
      maxRuns: opts.maxRuns ?? 3,
      gc: opts.gc ?? exposeGc(),
      newSpace: opts.newSpace ?? newSpace,
      oldUsed: opts.oldUsed ?? oldUsed,
      compact: opts.compact ?? true,
      random: opts.random ?? Math.random,
      scavenges: opts.scavenges ?? scavenges,
      oldGrowthBytes: opts.oldGrowthBytes ?? 4 * 2 ** 20,
      now: opts.now ?? Date.now,
      log: opts.log ?? (() => {}),
      afterGc: opts.afterGc,
      afterGcDelayMs: opts.afterGcDelayMs ?? 1000
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
    clearTimeout(this.afterTimer)
    this.afterTimer = undefined
  }

  private schedule (): void {
    // jittered: every peer follows every request, so a network's peers go idle at the same moment, and on a shared
    // host (a testnet) 3-4 compacting GCs at once took 350-610 ms each, against 80-140 ms one at a time
    this.timer = setTimeout(() => { this.poll() }, this.opts.pollMs * (0.75 + 0.5 * this.opts.random()))
    // never what keeps the process alive
    this.timer.unref()
  }

  private poll (): void {
    this.timer = undefined
    const { size, used, capacity = size / 2 } = this.opts.newSpace()
    const now = this.opts.now()
    const prev = this.last
    this.last = { used, capacity, at: now, scavenges: this.opts.scavenges() }
    const rate = prev === undefined ? undefined : allocated(prev, this.last) / Math.max(1, now - prev.at)
    const quiet = rate !== undefined && rate < this.opts.quietBytesPerMs
    this.quietLooks = quiet ? this.quietLooks + 1 : 0
    this.opts.log('look %d: new space %d KiB, filling at %s B/ms', this.polls, Math.round(size / 1024), rate === undefined ? '?' : rate.toFixed(0))
    // small already (V8 shrank it in a quiet scavenge) and the old generation no larger than after the last full
    // GC: nothing to give back now, but a network still forming may grow it again, so keep looking. V8 may shrink
    // the new space on its own after a burst and leave the old generation's garbage (dead request state) for a
    // full GC that, at rest, does not come: hence the second test. Two quiet spells in a row before collecting:
    // see collect(). After the scavenge, the full GC comes at the first quiet look THROUGHPUT_WINDOW_MS later, even
    // when V8 already shrank the new space itself: it is what frees the old generation's garbage, and with
    // PEER_NODE_FLAGS' --no-memory-reducer nothing else will until the heap grows again.
    const due = this.sampled
      ? this.quietLooks >= 1 && now - this.gcAt >= THROUGHPUT_WINDOW_MS
      : this.quietLooks >= 2 && (size > SMALL_NEW_SPACE || this.oldGrew())
    if (due) {
      this.quietLooks = 0
      if (this.collect(size)) return
    }
    if (++this.polls < this.opts.maxPolls) this.schedule()
  }

  /**
   * V8 shrinks the new space in a GC only if the allocation rate it measured since its previous GCs is low, and the
   * previous GC of an idle peer was in its last busy moment: a full GC then shrinks nothing (seen on 32-peer
   * testnets: 2 of 3 wasted). So first a scavenge (a few ms), which starts V8's measure afresh, and at the first
   * quiet look THROUGHPUT_WINDOW_MS later the full GC, which shrinks the new space and frees the old generation's
   * garbage. When V8 already shrank the new space in a scavenge of its own, the full GC comes at once.
   * True when done until the next arm().
   */
  private collect (size: number): boolean {
    // a new space V8 already shrank needs no scavenge first
    const major = this.sampled || size <= SMALL_NEW_SPACE
    const t0 = performance.now()
    if (major && this.opts.compact) compacting(() => { this.opts.gc?.(undefined) })
    else if (major) this.opts.gc?.(undefined)
    else this.opts.gc?.({ type: 'minor' })
    const after = this.opts.newSpace()
    this.opts.log('%s GC in %s ms: new space %d -> %d KiB', major ? 'full' : 'young', (performance.now() - t0).toFixed(1), Math.round(size / 1024), Math.round(after.size / 1024))
    this.last = { used: after.used, capacity: after.capacity ?? after.size / 2, at: this.opts.now(), scavenges: this.opts.scavenges() }
    this.gcAt = this.last.at
    this.sampled = true
    if (!major) return false
    this.runs++
    this.runsThisArm++
    this.lastRunAt = this.opts.now()
    this.oldAfterGc = this.opts.oldUsed()
    const afterGc = this.opts.afterGc
    if (afterGc !== undefined) {
      clearTimeout(this.afterTimer)
      this.afterTimer = setTimeout(() => { this.afterTimer = undefined; afterGc() }, this.opts.afterGcDelayMs)
      this.afterTimer.unref()
    }
    return after.size <= SMALL_NEW_SPACE || this.runsThisArm >= this.opts.maxRuns
  }

  private oldGrew (): boolean {
    return this.oldAfterGc === undefined || this.opts.oldUsed() - this.oldAfterGc >= this.opts.oldGrowthBytes
  }
}

/**
 * Runs fn (a full GC) with V8's --compact-on-every-full-gc set, unless the process was started with it (then it
 * stays). A full GC moves objects only off the pages it picks as fragmented enough; after a burst the old
 * generation is a few live objects scattered among dead request state, and a plain gc() left the old space at 23
 * MiB committed after 100 requests and 31-32 after 1000, with 23-25 MiB of live heap in all spaces (bench:soak at
 * rest). Compacting it all takes it to 15-17 MiB both times, 8-15 MiB less RSS per peer at rest, for a full GC of
 * 80-140 ms instead of 35-45, once per quiet spell. The flag is read at each GC, so set only around this one.
 */
export function compacting (fn: () => void): void {
  if (process.execArgv.includes('--compact-on-every-full-gc')) { fn(); return }
  try {
    setFlagsFromString('--compact-on-every-full-gc')
  } catch {}
  try {
    fn()
  } finally {
    try { setFlagsFromString('--no-compact-on-every-full-gc') } catch {}
  }
}

function oldUsed (): number {
  return getHeapSpaceStatistics().find(s => s.space_name === 'old_space')?.space_used_size ?? 0
}

interface Look { used: number, capacity: number, at: number, scavenges: number }

/**
 * Bytes allocated in the new space between two looks. After a scavenge the allocation area is empty again: the
 * rest of it filled first (capacity - prev.used), every further scavenge is a whole area, and now.used is what was
 * allocated since (plus what survived, so this errs towards busy). Before, a look after any scavenge counted as
 * busy: once V8 had shrunk the new space to 1 MiB, a peer at rest allocating 300 B/ms filled it every 3-4 s, and
 * its old generation's garbage waited up to a minute or more for two looks in a row without a scavenge between.
 */
function allocated (prev: Look, now: Look): number {
  const k = now.scavenges - prev.scavenges
  // no scavenge seen but used went down: one we were not told about (a test's fake, or no observer)
  if (k <= 0) return now.used >= prev.used ? now.used - prev.used : Math.max(0, prev.capacity - prev.used) + now.used
  return Math.max(0, prev.capacity - prev.used) + (k - 1) * prev.capacity + now.used
}

let minorGcs = 0
let gcObserver: PerformanceObserver | undefined

/** scavenges since the first call (a process-wide observer of V8's GC entries, made once and never removed) */
function scavenges (): number {
  if (gcObserver === undefined) {
    gcObserver = new PerformanceObserver(list => {
      for (const e of list.getEntries()) if (((e as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcs++
    })
    gcObserver.observe({ entryTypes: ['gc'] })
  }
  return minorGcs
}

interface NewSpace {
  /** committed (both semi-spaces) */
  size: number
  /** used in the allocation area */
  used: number
  /** where the allocation area is full (used + available); defaults to size / 2 */
  capacity?: number
}

function newSpace (): Required<NewSpace> {
  const s = getHeapSpaceStatistics().find(s => s.space_name === 'new_space')
  const used = s?.space_used_size ?? 0
  return { size: s?.space_size ?? 0, used, capacity: used + (s?.space_available_size ?? 0) }
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
