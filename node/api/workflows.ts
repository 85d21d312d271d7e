import { HttpError, type Route } from './types.ts'
import type { BundleLoader } from '../dscheduler/loader.ts'
import { refToString, type Source, type Workflow } from '../workflow/types.ts'

const LOAD_TIMEOUT_MS = 10_000
const CID_RE = /^[a-zA-Z0-9]{8,128}$/

/** A workflow's shape, for drawing it: its steps and the edges data flows along. */
export interface WorkflowGraph {
  workflow: string
  name: string
  description?: string
  inputs: string[]
  outputs: Record<string, string>
  steps: Array<{ name: string, module: string, export: string, out: string[], foreach?: string, when?: string, trigger: string }>
  /** `from` is a step name or `inputs`; `to` a step name or `outputs` */
  edges: Array<{ from: string, to: string, label: string }>
}

function sourcesOf (src: Source): Source[] { return src.kind === 'oneOf' ? src.refs : [src] }

export function workflowGraph (cid: string, wf: Workflow): WorkflowGraph {
  const edges: WorkflowGraph['edges'] = []
  const edge = (src: Source, to: string, label: string): void => {
    for (const r of sourcesOf(src)) {
      if (r.kind === 'step') edges.push({ from: r.step, to, label: `${r.output} → ${label}` })
      else if (r.kind === 'input') edges.push({ from: 'inputs', to, label: `${r.name} → ${label}` })
    }
  }
  for (const step of Object.values(wf.steps)) {
    for (const [param, src] of Object.entries(step.in)) edge(src, step.name, param)
    if (step.foreach !== undefined) edge(step.foreach, step.name, 'foreach')
    if (step.when !== undefined) edge(step.when.ref, step.name, 'when')
  }
  for (const [name, src] of Object.entries(wf.outputs)) edge(src, 'outputs', name)
  return {
    workflow: cid,
    name: wf.name,
    ...(wf.description !== undefined ? { description: wf.description } : {}),
    inputs: wf.inputs,
    outputs: Object.fromEntries(Object.entries(wf.outputs).map(([k, v]) => [k, refToString(v)])),
    steps: Object.values(wf.steps).map(s => ({
      name: s.name,
      module: s.module,
      export: s.export,
      out: s.out,
      ...(s.foreach !== undefined ? { foreach: refToString(s.foreach) } : {}),
      ...(s.when !== undefined ? { when: refToString(s.when.ref) } : {}),
      trigger: s.trigger
    })),
    edges
  }
}

/**
 * POST /v1/workflows: a workflow bundle (dag-cbor, docs/workflow.md#bundle-format) -> {"workflow": "<cid>"}.
 * GET /v1/workflows/:cid: the workflow's steps and edges, for a workflow this peer loaded or a request here names.
 */
export function workflowRoutes (loader: BundleLoader, opts: { known?: (cid: string) => boolean } = {}): Route[] {
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
  }, {
    method: 'GET',
    path: '/v1/workflows/:cid',
    handler: async req => {
      const cid = req.params.cid
      if (!CID_RE.test(cid)) throw new HttpError(400, `invalid workflow CID ${JSON.stringify(cid)}`)
      // loading pins the bundle for the peer's lifetime: only for workflows a request here named, never any CID asked
      if (!loader.has(cid) && opts.known?.(cid) !== true) throw new HttpError(404, `workflow ${cid} is not known to this peer (no request here names it)`)
      let loaded
      try {
        loaded = await loader.load(cid, [], AbortSignal.timeout(LOAD_TIMEOUT_MS))
      } catch (err) {
        throw new HttpError(404, `workflow ${cid} not found here or on the network: ${(err as Error).message}`)
      }
      return workflowGraph(cid, loaded.workflow)
    }
  }]
}
