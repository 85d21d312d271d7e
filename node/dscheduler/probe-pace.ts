/**
 * When the membership's next probe round runs (membership.ts). Every round costs a ping and an ack each way per
 * peer (lpStream, yamux, noise and socket code on both sides: the largest share of an idle peer's CPU), so a
 * settled network probes every `restMs`, and every `busyMs` while there is something to spread or to decide
 * (news to piggyback, a suspect, a peer not yet a member). News that arrives while a rest round is pending
 * brings that round forward to `busyMs` after the previous one (at once when that is already past), so it never
 * waits out the rest period.
 */
export class ProbePace {
  private timer?: NodeJS.Timeout
  /** epoch ms the armed round is due */
  private dueAt = 0
  /** epoch ms the last round ran (or the pace was created) */
  private lastAt: number

  constructor (private readonly busyMs: number, private readonly restMs: number, private readonly round: () => void, private readonly now: () => number = Date.now) {
    this.lastAt = now()
  }

  /** Arms the next round, counted from the last one; a round already due sooner stays as it is. */
  arm (busy: boolean, stretch: number): void {
    const due = this.lastAt + (busy ? this.busyMs : this.restMs) * stretch
    if (this.timer !== undefined) {
      if (due >= this.dueAt) return
      clearTimeout(this.timer)
    }
    this.dueAt = due
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.lastAt = this.now()
      this.round()
    }, Math.max(0, due - this.now()))
    this.timer.unref()
  }

  get armed (): boolean { return this.timer !== undefined }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }
}
