import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

export interface WorkLoopDelayOptions {
  /** sampling period of the histogram (ms) @default 20 */
  resolution?: number
  /** sampling stops once this long passed without `work()` and `busy()` is false @default 30000 */
  idleMs?: number
  /** whether the peer still has work (unfinished requests, running steps) although nothing happened lately */
  busy?: () => boolean
}

/**
 * An event-loop delay histogram that samples only while the peer has work. Sampling is a libuv timer every
 * `resolution` ms: at 20 ms that is 50 wake-ups a second of a process with nothing else to do, and an idle
 * peer ran three such histograms (this one's users and prom-client's default): ~250 wake-ups a second, most of
 * its CPU at rest on this host, where each epoll_wait is a costly exit of the VM. The delay of an idle loop
 * says nothing anyway. `work()` (called on every scheduler event) turns sampling on; a check every `idleMs`
 * turns it off once nothing happened for that long and `busy()` says nothing runs. While off, the histogram
 * keeps what it recorded.
 */
export class WorkLoopDelay {
  readonly histogram: IntervalHistogram
  private readonly idleMs: number
  private lastWork = 0
  private sampling = false
  private stopped = false
  private timer?: NodeJS.Timeout

  constructor (private readonly opts: WorkLoopDelayOptions = {}) {
    this.histogram = monitorEventLoopDelay({ resolution: opts.resolution ?? 20 })
    this.idleMs = opts.idleMs ?? 30_000
  }

  /** Something happened that the delay matters for: sample (again) for at least `idleMs`. Cheap; call freely. */
  work (): void {
    this.lastWork = Date.now()
    if (this.sampling || this.stopped) return
    this.sampling = true
    this.histogram.enable()
    this.arm()
  }

  get active (): boolean { return this.sampling }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.sampling) this.histogram.disable()
    this.sampling = false
  }

  private arm (): void {
    this.timer = setTimeout(() => { this.check() }, this.idleMs)
    this.timer.unref()
  }

  private check (): void {
    this.timer = undefined
    if (this.stopped) return
    if (Date.now() - this.lastWork < this.idleMs || this.opts.busy?.() === true) { this.arm(); return }
    this.sampling = false
    this.histogram.disable()
  }
}
