import { LostValueError, materialize, sameValue } from './materialize.ts'
import { holdersOf } from './runner.ts'
import type { RequestState } from './request-state.ts'
import type { DStore } from '../dstore/types.ts'

const CONDITION_TIMEOUT_MS = 30_000

/** The steps with a `when`, per workflow: this runs after every finished step, most workflows have none. */
const conditional = new WeakMap<RequestState['workflow'], string[]>()
function conditionalSteps (workflow: RequestState['workflow']): string[] {
  let names = conditional.get(workflow)
  if (names === undefined) {
    names = Object.entries(workflow.steps).filter(([, step]) => step.when !== undefined).map(([name]) => name)
    conditional.set(workflow, names)
  }
  return names
}
const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 5000

export interface ConditionHooks {
  changed: () => void
  /** whether membership holds a peer alive */
  isLive: (peer: string) => boolean
  /** every holder of the condition's value is dead: ask for its producer to run again */
  lost: (cid: string) => void
  /** whether the request still runs (retries stop when it does not) */
  running: () => boolean
}

/**
 * Evaluates every `when` whose value now exists, once: the value is fetched (or decoded, when inline) and
 * compared on its canonical encoding, so every peer reaches the same verdict. A failed fetch is retried with
 * backoff (a slow or busy holder is not a lost value); when every holder is dead the producer is asked to run
 * again, as for any input. `inFlight` guards against a second evaluation while one runs.
 */
export function evaluateConditions (s: RequestState, store: DStore, inFlight: Set<string>, hooks: ConditionHooks, attempt = 0): void {
  for (const name of conditionalSteps(s.workflow)) {
    const cond = s.workflow.steps[name].when
    if (cond === undefined || s.hasCondition(name) || inFlight.has(name)) continue
    const r = s.resolveRef(cond.ref, name, null)
    if (r.state !== 'ready') continue
    inFlight.add(name)
    materialize(store, r.value, { pin: s.id, signal: AbortSignal.timeout(CONDITION_TIMEOUT_MS) }).then(value => {
      s.recordCondition(name, cond.in !== undefined ? cond.in.some(c => sameValue(value, c)) : sameValue(value, cond.equals))
      inFlight.delete(name)
      hooks.changed()
    }, err => {
      if (err instanceof LostValueError && !holdersOf(r.value, err.cid).some(h => hooks.isLive(h))) hooks.lost(err.cid)
      const wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt)
      setTimeout(() => {
        inFlight.delete(name)
        if (hooks.running()) evaluateConditions(s, store, inFlight, hooks, attempt + 1)
      }, wait).unref()
    })
  }
}
