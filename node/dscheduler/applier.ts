import { claimsOf, fromWinner, handoffSample, namedInstance, recordClaim } from './claims.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import type { RequestEvent } from '../../protocols/events/index.ts'
import type { Tracked } from './tracked.ts'
import type { DScheduler } from './scheduler.ts'

/**
 * Applying one event to its request: record the fact (runner events only from the winning claim), then mark
 * dirty exactly the instances it can change, for the next pass. Nothing here walks the whole request.
 */
/** Runner events of losing claims kept per instance, in case their claim turns out to win after all. */
export const MAX_HELD_EVENTS = 64

export class EventApplier {
  constructor (private readonly sched: DScheduler) {}

  apply (t: Tracked, ev: RequestEvent): void {
    const s = t.state
    if (s === undefined || t.finishing === true) {
      if (ev.type === 'request-done' && t.done === undefined && s !== undefined) { t.done = ev; this.sched.pump(ev.request) }
      else if (s !== undefined) this.sched.late.apply(t, s, ev)
      return
    }
    switch (ev.type) {
      case 'step-claimed':
      case 'steps-assigned': {
        if (ev.start !== undefined && ev.start !== s.startId) return
        this.sched.load.learnSlots(ev.from, ev.slots)
        for (const c of claimsOf(ev)) {
          const rec = namedInstance(s, c.step, c.index)
          if (rec !== undefined && recordClaim(rec, c.peer, { attempt: c.attempt, incarnation: c.incarnation, ts: ev.ts })) this.touch(t, rec)
        }
        return
      }
      case 'output-ready':
      case 'element-posted':
      case 'step-done':
      case 'step-failed': {
        const rec = namedInstance(s, ev.step, ev.index)
        if (rec === undefined || (ev.start !== undefined && ev.start !== s.startId)) return
        if (ev.type !== 'step-done' && ev.type !== 'step-failed' && !s.step(ev.step).out.includes(ev.output)) return
        // a runner's event implies its claim (the claim event itself may have been lost on the way)
        recordClaim(rec, ev.from, { attempt: ev.attempt, incarnation: ev.incarnation, ts: ev.ts })
        this.sched.dispatcher.refreshWinner(t, s, rec)
        if (!fromWinner(rec, ev.from, ev)) {
          // not from the claim that wins now; but the winner may still change (its claim heard late): keep it
          this.sched.metrics.fencedDrops++
          const held = (rec.held ??= [])
          held.push(ev)
          if (held.length > MAX_HELD_EVENTS) held.shift()
          return
        }
        this.applyResult(t, s, rec, ev)
        return
      }
      case 'request-cancelled':
        // a client-signed cancel was checked (signature, identity) by the gossip validator or the API before it got here
        if (ev.auth === undefined && ev.from !== s.started.submitter && ev.from !== s.started.from && ev.from !== this.sched.self) return
        s.fatal ??= `cancelled: ${ev.reason}`
        t.outcomeDirty = true
        break
      case 'request-done':
        if (!this.sched.finisher.mayFinish(s, ev.from)) return
        t.done ??= ev
        t.outcomeDirty = true
        break
      case 'value-lost': this.onValueLost(t, s, ev.cid); break
    }
    this.sched.pump(s.id)
  }

  /** The winner of an instance changed: the new winner's results that arrived before its claim count now. */
  replayHeld (t: Tracked, s: RequestState, rec: InstanceRecord): void {
    const held = rec.held
    if (held === undefined || held.length === 0) return
    rec.held = held.filter(ev => !fromWinner(rec, ev.from, ev))
    for (const ev of held) if (fromWinner(rec, ev.from, ev)) this.applyResult(t, s, rec, ev)
  }

  /** An accepted output, element, done or failure of an instance's winning run. */
  private applyResult (t: Tracked, s: RequestState, rec: InstanceRecord, ev: Extract<RequestEvent, { type: 'output-ready' | 'element-posted' | 'step-done' | 'step-failed' }>): void {
    const wf = s.started.workflow
    switch (ev.type) {
      case 'output-ready':
        if (!s.recordOutput(ev.step, ev.index, ev.output, ev.value)) return
        this.sched.history.recordOutput(wf, ev.step, ev.output, ev.value.inline !== undefined ? 0 : ev.value.size)
        rec.lastPostTs = Math.max(rec.lastPostTs ?? 0, ev.ts)
        this.touchReaders(t, s, ev.step, ev.output, ev.index)
        break
      case 'element-posted':
        if (!s.recordElement(ev.step, ev.index, ev.output, ev.element, ev.value)) return
        this.sched.history.recordOutput(wf, ev.step, ev.output, ev.value.inline !== undefined ? 0 : ev.value.size)
        this.touchReaders(t, s, ev.step, ev.output, ev.element)
        break
      case 'step-done':
        // outputs announced with the done count as their output-ready would, first
        for (const [output, value] of Object.entries(ev.outputs ?? {})) {
          if (!s.step(ev.step).out.includes(output) || !s.recordOutput(ev.step, ev.index, output, value)) continue
          this.sched.history.recordOutput(wf, ev.step, output, value.inline !== undefined ? 0 : value.size)
          this.touchReaders(t, s, ev.step, output, ev.index)
        }
        if (!s.recordDone(ev)) return
        this.sched.history.recordRun(wf, ev.step, ev.endAt - ev.startAt)
        // outputs that came with the done came at the end; the publisher's clock is its instances' (one host)
        this.sched.history.recordPost(wf, ev.step, (ev.outputs !== undefined && Object.keys(ev.outputs).length > 0 ? ev.endAt : Math.min(rec.lastPostTs ?? ev.endAt, ev.endAt)) - ev.startAt, ev.endAt - ev.startAt)
        if (ev.coldStartMs > 0) this.sched.history.recordColdStart(wf, ev.coldStartMs)
        if (s.step(ev.step).trigger !== 'eager') {
          const h = handoffSample(s, ev.step, ev.from, ev.readyAt)
          if (h !== undefined) this.sched.history.recordHandoff(h.remote, h.ms)
        }
        for (const output of Object.keys(ev.streams)) this.touchReaders(t, s, ev.step, output, null)
        if (s.started.mode === 'control') for (const name of s.readersOfStep(ev.step)) this.touchStep(t, s, name)
        t.outcomeDirty = true
        this.touch(t, rec)
        break
      case 'step-failed':
        if (!s.recordFailed(ev.step, ev.index, ev.error)) return
        rec.failedBy = { peer: ev.from, attempt: ev.attempt, incarnation: ev.incarnation }
        t.outcomeDirty = true
        this.touch(t, rec)
        break
    }
    this.sched.pump(s.id)
  }

  touch (t: Tracked, rec: InstanceRecord): void {
    t.dirty.add(rec)
    if (t.state !== undefined) this.sched.pump(t.state.id)
  }

  touchStep (t: Tracked, s: RequestState, step: string): void {
    if (s.step(step).foreach === undefined) s.instance(step, null)
    for (const rec of s.instancesOf(step)) t.dirty.add(rec)
  }

  /** Only the instances that read `step.output` can change when it (or its element `at`) appears. */
  private touchReaders (t: Tracked, s: RequestState, step: string, output: string, at: number | null): void {
    for (const name of s.readers.get(`${step}.${output}`) ?? []) {
      const reader = s.step(name)
      const src = reader.foreach
      const perItem = at !== null && src !== undefined && src.kind === 'step' && src.step === step && src.output === output &&
        (s.step(step).foreach !== undefined || s.resolveRef({ kind: 'item' }, name, at).state === 'ready') && !Object.values(reader.in).some(i => i.kind === 'step' && i.step === step)
      if (perItem && s.elementKnown(name, at)) t.dirty.add(s.instance(name, at))
      else this.touchStep(t, s, name)
      if (reader.when !== undefined) t.outcomeDirty = true
      // a whole list or a closed stream fixes the instance count of a foreach over it, and of every foreach
      // downstream of that one: the steps reading their lists can now resolve
      if (at === null && src?.kind === 'step' && src.step === step && src.output === output) this.touchCount(t, s, name, new Set())
    }
  }

  private touchCount (t: Tracked, s: RequestState, step: string, seen: Set<string>): void {
    if (seen.has(step)) return
    seen.add(step)
    for (const output of s.step(step).out) {
      for (const name of s.readers.get(`${step}.${output}`) ?? []) {
        this.touchStep(t, s, name)
        const src = s.step(name).foreach
        if (src?.kind === 'step' && src.step === step) this.touchCount(t, s, name, seen)
      }
    }
    t.outcomeDirty = true
  }

  private onValueLost (t: Tracked, s: RequestState, cid: string): void {
    const { reset, input } = s.forgetCid(cid)
    if (input !== undefined) { s.fatal ??= `input ${input} was lost: no live peer holds ${cid}`; t.outcomeDirty = true; return }
    for (const rec of reset) {
      this.sched.metrics.reruns++
      const key = instanceKey(rec.step, rec.index)
      const runner = t.runners.get(key)
      if (runner?.finished === true) t.runners.delete(key)
      this.touch(t, rec)
    }
  }
}
