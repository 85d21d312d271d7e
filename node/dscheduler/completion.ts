import { materialize, storeValue } from './materialize.ts'
import type { RequestState } from './request-state.ts'
import type { DStore } from '../dstore/types.ts'
import type { ValueRef } from '../../protocols/events/index.ts'

/**
 * The workflow outputs of a finished request as value references (null for a skipped one). An output that is
 * one value is referenced as it is; one assembled from several (a foreach step's list, a stream) is built and
 * stored by the finisher, so every peer can read the result from one CID.
 */
export async function finalOutputs (s: RequestState, store: DStore, self: string, finisher: boolean): Promise<Record<string, ValueRef | null>> {
  const outputs: Record<string, ValueRef | null> = {}
  const o = s.outcome()
  if (o.status !== 'ok') return outputs
  for (const [name, r] of Object.entries(o.outputs)) {
    if (r === null) { outputs[name] = null; continue }
    if (r.kind === 'ref') { outputs[name] = r.ref; continue }
    if (!finisher) continue
    outputs[name] = await storeValue(store, await materialize(store, r, { pin: s.id }), self, { pin: s.id })
  }
  return outputs
}
