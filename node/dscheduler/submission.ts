import { CID } from 'multiformats/cid'
import { storeValue } from './materialize.ts'
import type { InputValue, SubmitOptions } from './types.ts'
import type { RequestStarted, ValueRef } from '../../protocols/events/index.ts'
import type { DStore } from '../dstore/types.ts'
import type { Value } from '../values/codec.ts'
import type { Workflow } from '../workflow/types.ts'

/** A submission refused before anything ran: bad request id, missing or unknown inputs, a bad `$cid`. */
export class SubmitError extends Error {
  static readonly NAME = 'SubmitError'
  constructor (message: string) {
    super(message)
    this.name = SubmitError.NAME
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const CID_INPUT_TIMEOUT_MS = 30_000

export function checkRequestId (id: string): string {
  if (!REQUEST_ID.test(id)) throw new SubmitError(`requestId ${JSON.stringify(id)} must be 1-128 characters of A-Z a-z 0-9 . _ : -`)
  return id
}

function isCidInput (raw: InputValue): raw is { $cid: string } {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw) && !(raw instanceof Uint8Array) &&
    Object.keys(raw).length === 1 && typeof raw.$cid === 'string'
}

/** An input value goes into DStore, pinned to its request; `{"$cid"}` inputs are fetched and verified first. */
async function storeInput (store: DStore, self: string, request: string, name: string, raw: InputValue): Promise<ValueRef> {
  let value: Value
  if (isCidInput(raw)) {
    let cid: CID
    try { cid = CID.parse(raw.$cid) } catch { throw new SubmitError(`input ${name}: $cid ${JSON.stringify(raw.$cid)} is not a CID`) }
    value = await store.get(cid, { pin: request, signal: AbortSignal.timeout(CID_INPUT_TIMEOUT_MS) })
  } else {
    value = raw as Value
  }
  return storeValue(store, value, self, { pin: request, meta: { request, step: 'inputs', output: name, index: null } })
}

/** Checks the inputs against the workflow, stores them, and makes the request-started event. */
export async function startRequest (id: string, opts: SubmitOptions, wf: Workflow, store: DStore, self: string): Promise<RequestStarted> {
  const given = Object.keys(opts.inputs)
  const missing = wf.inputs.filter(n => !given.includes(n))
  const unknown = given.filter(n => !wf.inputs.includes(n))
  if (missing.length > 0) throw new SubmitError(`workflow ${wf.name} needs input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`)
  if (unknown.length > 0) throw new SubmitError(`workflow ${wf.name} has no input${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (inputs: ${wf.inputs.join(', ') || 'none'})`)
  const inputs: Record<string, ValueRef> = {}
  for (const [name, raw] of Object.entries(opts.inputs)) inputs[name] = await storeInput(store, self, id, name, raw)
  return {
    type: 'request-started',
    from: self,
    ts: Date.now(),
    request: id,
    workflow: opts.workflow,
    inputs,
    mode: opts.mode ?? 'dataflow',
    store: opts.store ?? 'distributed',
    submitter: self,
    deadlineMs: opts.deadlineMs,
    auth: opts.auth
  }
}
