import { CID } from 'multiformats/cid'
import { finalOutputs } from './completion.ts'
import { rankCandidates } from './placement.ts'
import { setLongTimeout } from '../util/long-timer.ts'
import type { RequestDone, ValueRef } from '../../protocols/events/index.ts'
import type { RequestState } from './request-state.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/**
 * The end of a request, the same on every peer: its runners stop, claims leave the load book, the instances
 * pre-warmed for it are released (prewarm.ts), the submitter
 * (or, if it died, the best-ranked live peer) publishes `request-done` with the outputs, intermediates are
 * released, and after the retention the state goes too (a durable record stays, reader.ts).
 */
export class Finisher {
  constructor (private readonly sched: DScheduler) {}

  /** Whom a `request-done` is accepted from: the submitter, or any peer once the submitter is dead. */
  mayFinish (s: RequestState, from: string): boolean {
    return from === s.started.submitter || !this.sched.c.membership.isLive(s.started.submitter)
  }

  private finisherOf (s: RequestState): string {
    const { membership } = this.sched.c
    return membership.isLive(s.started.submitter) ? s.started.submitter : rankCandidates(s.id, membership.live(), new Map())[0]
  }

  finish (t: Tracked, error: string | undefined): void {
    const s = t.state as RequestState
    if (t.finishing === true) return
    t.finishing = true
    t.deadline?.clear()
    clearTimeout(t.timer)
    t.timer = undefined
    clearTimeout(t.quietClaimsTimer)
    t.quietClaims?.clear()
    for (const r of t.runners.values()) {
      if (r.finished) continue
      r.abort(error ?? 'request finished')
      if (!r.fired) r.finished = true
    }
    for (const rec of s.instances.values()) this.sched.load.set(rec.gid, undefined)
    // what was warmed for the request may retire again; a success teaches the next request's pre-warming
    this.sched.prewarmer.end(s, t.loaded, error === undefined && t.done?.status !== 'failed')
    t.unplaced.clear()
    t.dirty.clear()
    void this.publishDone(t, s, error).finally(() => {
      t.finishedAt = Date.now()
      this.sched.metrics.requestsFinished++
      for (const w of [...t.waiters]) w()
      const status = t.done?.status ?? (error === undefined ? 'ok' : 'failed')
      this.sched.late.finished(t, status)
      this.sched.reader.persist(t).catch(err => { this.sched.log.error('request %s: record not written: %s', s.id, (err as Error).message) })
      setLongTimeout(() => { this.sched.forget(s.id); this.sched.reader.dropRecord(s.id) }, this.sched.init.retentionMs)
      this.sched.safeDispatch('scheduler:request-finished', { request: s.id, status, mode: s.started.mode })
    })
  }

  private async publishDone (t: Tracked, s: RequestState, error: string | undefined): Promise<void> {
    const { self, c } = this.sched
    const finisher = this.finisherOf(s)
    let outputs: Record<string, ValueRef | null> = {}
    if (t.done === undefined) {
      try {
        if (error === undefined) outputs = await finalOutputs(s, c.store, self, finisher === self)
      } catch (err) {
        error = `collecting the outputs failed: ${(err as Error).message}`
      }
      if (finisher === self && t.done === undefined) {
        const done: RequestDone = { type: 'request-done', from: self, ts: Date.now(), request: s.id, status: error === undefined ? 'ok' : 'failed', outputs, ...(error !== undefined ? { error } : {}) }
        t.done = done
        await c.bus.publish(done)
      }
    }
    const keep = [...Object.values(outputs), ...Object.values(t.done?.outputs ?? {})].flatMap(ref => ref === null ? [] : [CID.parse(ref.cid)])
    await c.store.unpinRequest(s.id, keep).catch(err => { this.sched.log.error('unpin %s: %s', s.id, (err as Error).message) })
  }
}
