import { HttpError, type Route } from './types.ts'
import type { BundleLoader } from '../dscheduler/loader.ts'

/** POST /v1/workflows: a workflow bundle (dag-cbor, docs/workflow.md#bundle-format) -> {"workflow": "<cid>"}. */
export function workflowRoutes (loader: BundleLoader): Route[] {
  return [{
    method: 'POST',
    path: '/v1/workflows',
    handler: async req => {
      const bytes = await req.body()
      if (bytes.byteLength === 0) throw new HttpError(400, 'the body must be a workflow bundle (dag-cbor); `dflow submit` builds one from a workflow file')
      try {
        return { workflow: await loader.add(bytes) }
      } catch (err) {
        throw new HttpError(400, `invalid bundle: ${(err as Error).message}`)
      }
    }
  }]
}
