/**
 * The largest value noted within about the last `windowMs`: the maximum of the current window and the one before
 * it, so a peak is kept for one to two windows and then forgotten.
 */
export class RecentPeak {
  private current = 0
  private previous = 0
  private since: number

  constructor (private readonly windowMs: number, private readonly now: () => number = Date.now) {
    this.since = now()
  }

  note (value: number): void {
    this.roll()
    if (value > this.current) this.current = value
  }

  peak (): number {
    this.roll()
    return Math.max(this.current, this.previous)
  }

  private roll (): void {
    const t = this.now()
    if (t - this.since < this.windowMs) return
    // more than two windows without a note: nothing of the old ones is recent
    this.previous = t - this.since < 2 * this.windowMs ? this.current : 0
    this.current = 0
    this.since = t
  }
}
