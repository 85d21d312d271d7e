/**
 * Where a step's time goes, from the run records of every peer (`GET /v1/requests/:id/runs`, each run's `phases`):
 * the spans between the stages a runner goes through, summed up per step kind over many requests.
 */
import type { RunPhases } from '../../node/dscheduler/runner.ts'
import { predecessors } from '../../node/workflow/graph.ts'
import type { Workflow } from '../../node/workflow/types.ts'

export interface RunWithPhases { step: string, index: number | null, peer: string, outcome: string, firedAt: number, phases?: RunPhases }

/** The spans of a run, in the order they happen: each is the time from one stage to the next. */
export const PHASE_SPANS = [
  { name: 'queue', from: 'readyAt', to: 'slotAt' },
  { name: 'inputs', from: 'slotAt', to: 'postedAt' },
  { name: 'toInstance', from: 'postedAt', to: 'startedAt' },
  { name: 'run', from: 'startedAt', to: 'endedAt' },
  { name: 'resultBack', from: 'endedAt', to: 'resultAt' },
  { name: 'publish', from: 'resultAt', to: 'doneAt' }
] as const

export type PhaseSpan = typeof PHASE_SPANS[number]['name']

/** Every run of a request on the peers at `apis` (a peer that does not answer in time adds none). */
export async function fetchRuns (apis: string[], requestId: string, timeoutMs = 10_000): Promise<RunWithPhases[]> {
  const bodies = await Promise.all(apis.map(async api => {
    try {
      const res = await fetch(`${api}/v1/requests/${encodeURIComponent(requestId)}/runs`, { signal: AbortSignal.timeout(timeoutMs) })
      return res.ok ? (await res.json() as { runs: RunWithPhases[] }).runs : []
    } catch { return [] }
  }))
  return bodies.flat()
}

/** The spans of one finished run that it went through (a consumer queued behind its producer has no queue span). */
export function spansOf (phases: RunPhases): Partial<Record<PhaseSpan, number>> {
  const out: Partial<Record<PhaseSpan, number>> = {}
  for (const s of PHASE_SPANS) {
    const a = phases[s.from]
    const b = phases[s.to]
    if (a !== undefined && b !== undefined) out[s.name] = b - a
  }
  return out
}

/** A step's kind: its name without the numeric suffix generated workflows give each copy of a task. */
export const stepKind = (step: string): string => step.replace(/_\d+$/, '')

/**
 * Per step kind, the spans of its finished runs; with the workflow, also the hand-off in front of each run: from
 * the last of its producers handing its step-done to the bus to this run's inputs existing on its peer (the event's
 * way, and the claim's), `local` when both ran on one peer and `remote` when not.
 */
export class PhaseBook {
  private readonly kinds = new Map<string, { runs: number, spans: Map<PhaseSpan, number[]> }>()
  readonly handoffs = { local: [] as number[], remote: [] as number[] }

  constructor (private readonly workflow?: Workflow) {}

  add (runs: RunWithPhases[]): void {
    if (this.workflow !== undefined) this.addHandoffs(runs)
    for (const r of runs) {
      if (r.outcome !== 'done' || r.phases === undefined) continue
      const k = stepKind(r.step)
      let e = this.kinds.get(k)
      if (e === undefined) this.kinds.set(k, e = { runs: 0, spans: new Map() })
      e.runs++
      for (const [span, ms] of Object.entries(spansOf(r.phases)) as Array<[PhaseSpan, number]>) {
        let xs = e.spans.get(span)
        if (xs === undefined) e.spans.set(span, xs = [])
        xs.push(ms)
      }
    }
  }

  private addHandoffs (runs: RunWithPhases[]): void {
    const done = runs.filter(r => r.outcome === 'done' && r.phases !== undefined)
    for (const r of done) {
      if (r.phases?.readyAt === undefined) continue
      let last: RunWithPhases | undefined
      for (const p of predecessors(this.workflow!, r.step)) {
        for (const q of done) if (q.step === p && (last === undefined || (q.phases?.doneAt ?? 0) > (last.phases?.doneAt ?? 0))) last = q
      }
      const from = last?.phases?.doneAt
      if (last === undefined || from === undefined || r.phases.readyAt < from) continue
      this.handoffs[last.peer === r.peer ? 'local' : 'remote'].push(r.phases.readyAt - from)
    }
  }

  /** One line per step kind: runs, then each span's median / p90 in ms ('-' where no run went through it). */
  table (): string[] {
    const q = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]
    const head = `${'step kind'.padEnd(44)} runs  ${PHASE_SPANS.map(s => s.name.padStart(11)).join(' ')}   (median/p90 ms)`
    const rows = [...this.kinds].map(([k, e]) => `${k.slice(0, 44).padEnd(44)} ${String(e.runs).padStart(4)}  ${PHASE_SPANS.map(s => {
      const xs = e.spans.get(s.name)
      return (xs === undefined || xs.length === 0 ? '-' : `${q(xs, 0.5)}/${q(xs, 0.9)}`).padStart(11)
    }).join(' ')}`)
    const hand = (['local', 'remote'] as const).map(k => `${k} ${this.handoffs[k].length > 0 ? `${q(this.handoffs[k], 0.5)}/${q(this.handoffs[k], 0.9)}` : '-'} (${this.handoffs[k].length})`)
    return [head, ...rows, ...(this.workflow !== undefined ? [`hand-off, last producer's done -> inputs exist here: ${hand.join(', ')}`] : [])]
  }
}
