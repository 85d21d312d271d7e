import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * One garbage collection when the peer has gone quiet: after start-up, and when the scheduler lets go of its last
 * request. V8 grows the young generation to its cap (2 x 8 MiB with PEER_NODE_FLAGS' --max-semi-space-size=8)
 * under any burst, and a peer's start-up is one; it shrinks it again only in a GC that sees a low allocation rate.
 * At rest there are almost no allocations, so no GC comes, and V8's memory reducer arms itself only after a
 * full GC that grew the heap: an idle peer kept 16 MiB of new space for minutes (a 16-peer testnet at rest: 112-114
 * MiB per peer, against 97 for the peers whose memory reducer had run). One full GC a few seconds into the quiet
 * takes it back to 1 MiB and frees what finished requests left in the old generation, for ~10-30 ms of CPU per
 * busy-to-idle transition. If the allocation rate was still too high for V8 to shrink (a network still forming),
 * it tries again later, a few times.
 */
export interface IdleGcOptions {
  /** how long after arm() the GC runs. @default 8000 */
  quietMs?: number
  /** further tries, each after twice the previous wait, while the new space stays large. @default 3 */
  retries?: number
  /** for tests; by default V8's gc() (exposeGc) */
  gc?: () => void
  /** for tests; by default V8's committed new space */
  newSpaceBytes?: () => number
}

/** new space at or below this is V8's minimum (one 1 MiB page per semi-space, rounded): nothing to give back */
const SMALL_NEW_SPACE = 2 * 2 ** 20

export class IdleGc {
  private timer: NodeJS.Timeout | undefined
  private readonly quietMs: number
  private readonly retries: number
  private readonly gc: (() => void) | undefined
  private readonly newSpaceBytes: () => number
  /** GCs run so far (metrics, tests) */
  runs = 0

  constructor (opts: IdleGcOptions = {}) {
    this.quietMs = opts.quietMs ?? 8000
    this.retries = opts.retries ?? 3
    this.gc = opts.gc ?? exposeGc()
    this.newSpaceBytes = opts.newSpaceBytes ?? newSpaceCommitted
  }

  /** (Re)start the wait: the GC runs quietMs from now, unless arm() or stop() is called again before. */
  arm (): void {
    if (this.gc === undefined) return
    this.schedule(this.quietMs, this.retries)
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule (ms: number, retriesLeft: number): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.fire(ms, retriesLeft) }, ms)
    // never what keeps the process alive
    this.timer.unref()
  }

  private fire (waited: number, retriesLeft: number): void {
    this.timer = undefined
    if (this.newSpaceBytes() <= SMALL_NEW_SPACE) return
    this.gc?.()
    this.runs++
    if (this.newSpaceBytes() > SMALL_NEW_SPACE && retriesLeft > 0) this.schedule(waited * 2, retriesLeft - 1)
  }
}

function newSpaceCommitted (): number {
  return getHeapSpaceStatistics().find(s => s.space_name === 'new_space')?.space_size ?? 0
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
