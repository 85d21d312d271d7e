import { toJsonValue, type Value } from '../values/codec.ts'
import type { RequestDone, ValueRef } from '../../protocols/events/index.ts'
import type { RequestState, Resolved } from './request-state.ts'
import type { RequestView, StepView } from './types.ts'

const rel = (t: number | undefined, origin: number): number | null => t === undefined ? null : Math.max(0, t - origin)

/** The per-step timeline: every instance that ran or runs, and every skipped step. Times are ms from request start. */
export function stepViews (s: RequestState): StepView[] {
  const origin = s.started.ts
  const out: StepView[] = []
  for (const name of Object.keys(s.workflow.steps)) {
    if (s.skipped(name) === 'yes') {
      out.push({ name, index: null, peer: null, status: 'skipped', coldStartMs: null, readyMs: null, startMs: null, endMs: null })
      continue
    }
    const recs = [...s.instances.values()].filter(r => r.step === name).sort((a, b) => (a.index ?? -1) - (b.index ?? -1))
    for (const rec of recs) {
      const done = rec.done
      const claimant = done?.from ?? rec.winner?.peer ?? null
      const view: StepView = {
        name,
        index: rec.index,
        peer: claimant,
        status: done !== undefined ? 'ok' : rec.failed !== undefined ? 'failed' : rec.winner !== undefined ? 'running' : 'pending',
        coldStartMs: done?.coldStartMs ?? null,
        readyMs: rel(done?.readyAt, origin),
        startMs: rel(done?.startAt, origin),
        endMs: rel(done?.endAt, origin)
      }
      if (rec.failed !== undefined) view.error = rec.failed
      out.push(view)
    }
  }
  return out
}

export async function buildView (s: RequestState, status: RequestView['status'], done: RequestDone | undefined, finishedAt: number | undefined,
  materialize: (r: Resolved) => Promise<Value>, fetch: (ref: ValueRef) => Promise<Value>): Promise<RequestView> {
  const outputs: Record<string, unknown> = {}
  let error: string | undefined
  if (status === 'ok') {
    const local = s.outcome()
    for (const name of Object.keys(s.workflow.outputs)) {
      const ref = done?.outputs[name]
      if (ref === null) { outputs[name] = null; continue }
      if (ref !== undefined) { outputs[name] = toJsonValue(await fetch(ref)); continue }
      const r = local.status === 'ok' ? local.outputs[name] : null
      outputs[name] = r == null ? null : toJsonValue(await materialize(r))
    }
  } else if (status === 'failed') {
    error = done?.error ?? s.firstFailure() ?? 'failed'
  }
  const end = done?.ts ?? finishedAt
  const view: RequestView = {
    requestId: s.id,
    workflow: s.started.workflow,
    mode: s.started.mode,
    store: s.started.store,
    submitter: s.started.submitter,
    status,
    outputs,
    steps: stepViews(s),
    totalMs: end === undefined ? null : Math.max(0, end - s.started.ts)
  }
  if (error !== undefined) view.error = error
  return view
}
