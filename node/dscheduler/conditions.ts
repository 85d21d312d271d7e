import { materialize, sameValue } from './materialize.ts'
import type { RequestState } from './request-state.ts'
import type { DStore } from '../dstore/types.ts'

const CONDITION_TIMEOUT_MS = 30_000

/**
 * Evaluates every `when` whose value now exists, once: the value is fetched (or decoded, when inline) and
 * compared on its canonical encoding, so every peer reaches the same verdict. `inFlight` guards against a
 * second evaluation while one runs; `changed` is called after each verdict.
 */
export function evaluateConditions (s: RequestState, store: DStore, inFlight: Set<string>, changed: () => void): void {
  for (const [name, step] of Object.entries(s.workflow.steps)) {
    const cond = step.when
    if (cond === undefined || s.hasCondition(name) || inFlight.has(name)) continue
    const r = s.resolveRef(cond.ref, name, null)
    if (r.state !== 'ready') continue
    inFlight.add(name)
    materialize(store, r.value, { pin: s.id, signal: AbortSignal.timeout(CONDITION_TIMEOUT_MS) }).then(value => {
      s.recordCondition(name, cond.in !== undefined ? cond.in.some(c => sameValue(value, c)) : sameValue(value, cond.equals))
    }, err => {
      s.fatal ??= `condition of step ${name}: ${(err as Error).message}`
    }).finally(() => {
      inFlight.delete(name)
      changed()
    })
  }
}
