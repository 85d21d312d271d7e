import { CID } from 'multiformats/cid'
import { peerIdFromString } from '@libp2p/peer-id'
import { HttpError, type Route } from './types.ts'
import { fromJsonValue } from '../values/codec.ts'
import { MAX_DEADLINE_MS } from '../../protocols/events/index.ts'
import { authorizeCancel, NotAuthorizedError, type AuthorizePolicy } from '../dscheduler/authorize.ts'
import { encodeBlocks } from '../dstore/blocks.ts'
import { cancelPayload, SignatureError, signedFromJson, submitPayload, verifySigned, type SubmitClaim } from '../auth/signing.ts'
import type { DScheduler } from '../dscheduler/scheduler.ts'
import type { InputValue, Membership, RequestView } from '../dscheduler/types.ts'
import type { EventBus } from '../dscheduler/bus.ts'
import type { SubmitProtocol, LogLine } from '../../protocols/submit/index.ts'
import type { RequestEvent, RequestStarted, SignedBy } from '../../protocols/events/index.ts'
import type { Value } from '../values/codec.ts'
import type { ServerResponse } from 'node:http'
import { anyWithTimeout } from '../../protocols/util/timeout-signal.ts'

export interface RequestRoutesComponents {
  self: string
  scheduler: DScheduler
  submit: SubmitProtocol
  membership: Membership
  /** publishes signed cancels (scheduler.cancel publishes unsigned ones) */
  bus: EventBus
  /** who may submit and cancel */
  policy: AuthorizePolicy
  /** the store's chunk size: input CIDs are computed as DStore will store them, to check the signature */
  chunkSize: number
}

/** The longest `GET /v1/requests/:id?waitMs=` may hold a request open. */
export const MAX_WAIT_MS = 60_000

/** `waitMs`: absent is 0; an integer 0..MAX_WAIT_MS, else 400. */
function parseWaitMs (raw: string | null): number {
  if (raw === null || raw === '') return 0
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > MAX_WAIT_MS) throw new HttpError(400, `waitMs must be an integer from 0 to ${MAX_WAIT_MS} (ms), got ${JSON.stringify(raw)}`)
  return n
}

/** A signature older or newer than this is refused (replays, badly set clocks). */
const SIGNATURE_SKEW_MS = 10 * 60_000

function checkFresh (auth: SignedBy): void {
  if (Math.abs(Date.now() - auth.ts) > SIGNATURE_SKEW_MS) throw new HttpError(403, `not authorized: the signature is dated ${new Date(auth.ts).toISOString()}, more than 10 minutes from this peer's clock`)
}

function parseAuth (v: unknown): SignedBy {
  if (v === undefined) throw new HttpError(403, 'not authorized: the request is not signed (dflow submit and dflow cancel sign with --identity FILE, or DIR/client.key of a testnet)')
  try { return signedFromJson(v, 'auth') } catch (err) { throw new HttpError(400, (err as Error).message) }
}

/** Checks the client's signature over the submission and that its identity may submit here (403 otherwise). */
async function authorizeSubmit (opts: ReturnType<typeof parseSubmitBody>, auth: SignedBy, c: RequestRoutesComponents): Promise<void> {
  checkFresh(auth)
  const inputs: Record<string, string> = {}
  for (const [name, v] of Object.entries(opts.inputs)) {
    const ref = v as { $cid?: unknown }
    inputs[name] = v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v) && typeof ref.$cid === 'string' && Object.keys(v).length === 1
      ? ref.$cid
      : (await encodeBlocks(v as Value, c.chunkSize)).cid.toString()
  }
  const claim: SubmitClaim = { request: opts.requestId ?? '', workflow: opts.workflow, inputs, mode: opts.mode ?? 'dataflow', store: opts.store ?? 'distributed', deadlineMs: opts.deadlineMs }
  let signer: string
  try {
    signer = verifySigned(auth, ts => submitPayload(claim, ts))
  } catch (err) {
    if (err instanceof SignatureError) throw new HttpError(403, `not authorized: ${err.message} (the request id, workflow, inputs, mode, store and deadline are signed; a client-chosen requestId is required)`)
    throw err
  }
  if (!c.policy.authorized.has(signer) && !c.policy.isNetworkPeer(signer)) {
    throw new HttpError(403, `not authorized: identity ${signer} is not an authorized submitter of this peer (add it to the file of --authorized-submitters)`)
  }
}

const PULL_TIMEOUT_MS = 5_000

export function parseSubmitBody (body: unknown): Parameters<DScheduler['submit']>[0] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object')
  const b = body as Record<string, unknown>
  const known = ['workflow', 'inputs', 'requestId', 'mode', 'store', 'deadlineMs', 'auth']
  const extra = Object.keys(b).filter(k => !known.includes(k))
  if (extra.length > 0) throw new HttpError(400, `unknown field${extra.length > 1 ? 's' : ''} ${extra.join(', ')} (known: ${known.join(', ')})`)
  if (typeof b.workflow !== 'string') throw new HttpError(400, 'workflow must be the workflow CID (a string), from POST /v1/workflows')
  try { CID.parse(b.workflow) } catch { throw new HttpError(400, `workflow ${JSON.stringify(b.workflow)} is not a CID`) }
  const rawInputs = b.inputs ?? {}
  if (rawInputs === null || typeof rawInputs !== 'object' || Array.isArray(rawInputs)) throw new HttpError(400, 'inputs must be an object of NAME: value')
  const inputs: Record<string, InputValue> = {}
  for (const [name, v] of Object.entries(rawInputs)) {
    const isCid = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { $cid?: unknown }).$cid === 'string'
    try {
      inputs[name] = isCid ? { $cid: (v as { $cid: string }).$cid } : fromJsonValue(v, `inputs.${name}`)
    } catch (err) {
      throw new HttpError(400, (err as Error).message)
    }
  }
  if (b.requestId !== undefined && typeof b.requestId !== 'string') throw new HttpError(400, 'requestId must be a string')
  if (b.mode !== undefined && b.mode !== 'dataflow' && b.mode !== 'control') throw new HttpError(400, `mode must be "dataflow" or "control", got ${JSON.stringify(b.mode)}`)
  if (b.store !== undefined && b.store !== 'distributed' && b.store !== 'central') throw new HttpError(400, `store must be "distributed" or "central", got ${JSON.stringify(b.store)}`)
  if (b.deadlineMs !== undefined && !(Number.isSafeInteger(b.deadlineMs) && (b.deadlineMs as number) > 0 && (b.deadlineMs as number) <= MAX_DEADLINE_MS)) throw new HttpError(400, `deadlineMs must be a positive integer up to ${MAX_DEADLINE_MS} (30 days)`)
  return { workflow: b.workflow, inputs, requestId: b.requestId, mode: b.mode, store: b.store, deadlineMs: b.deadlineMs as number | undefined }
}

/** Events as JSON for server-sent events: inline bytes are replaced by their size. */
function eventJson (ev: RequestEvent): string {
  return JSON.stringify(ev, (key, value) => {
    if (key === 'inline' && value instanceof Uint8Array) return value.byteLength
    return value
  })
}

export function requestRoutes (c: RequestRoutesComponents): Route[] {
  /** Ask every other live peer; the first that knows the request answers. */
  const pull = async (id: string): Promise<RequestView | undefined> => {
    const others = c.membership.live().filter(p => p !== c.self)
    if (others.length === 0) return undefined
    const signal = AbortSignal.timeout(PULL_TIMEOUT_MS)
    try {
      return await Promise.any(others.map(async p => {
        const a = await c.submit.call(peerIdFromString(p), { op: 'status', requestId: id }, signal)
        if (a.view === undefined) throw new Error('no view')
        return a.view
      }))
    } catch {
      return undefined
    }
  }

  const view = async (id: string): Promise<RequestView> => {
    const local = await c.scheduler.view(id)
    if (local !== undefined) return local
    const remote = await pull(id)
    if (remote === undefined) throw new HttpError(404, `no request ${id} known to this peer or its live peers`)
    return remote
  }

  return [
    {
      method: 'POST',
      path: '/v1/requests',
      handler: async req => {
        const body = await req.json()
        const opts = parseSubmitBody(body)
        const auth = parseAuth((body as { auth?: unknown }).auth)
        if (opts.requestId === undefined) throw new HttpError(400, 'a signed submission names its requestId (it is part of what is signed)')
        await authorizeSubmit(opts, auth, c)
        try {
          return { requestId: await c.scheduler.submit({ ...opts, auth }) }
        } catch (err) {
          const name = (err as Error).name
          if (name === 'SubmitError' || name === 'WorkflowValidationError' || name === 'BundleError' || name === 'LimitError') throw new HttpError(400, (err as Error).message)
          if (name === 'NotFoundError' || name === 'ValueNotFoundError' || /not found/i.test((err as Error).message)) throw new HttpError(404, `workflow ${opts.workflow}: ${(err as Error).message}`)
          throw err
        }
      }
    },
    { method: 'GET', path: '/v1/requests', handler: async () => ({ requests: c.scheduler.list().slice(0, 200) }) },
    {
      method: 'GET',
      path: '/v1/requests/:id',
      handler: async req => {
        const id = req.params.id
        const waitMs = parseWaitMs(req.url.searchParams.get('waitMs'))
        // long poll: a client waiting for the end asks once instead of building the whole view every few ms
        if (waitMs > 0 && c.scheduler.has(id)) {
          const gone = new AbortController()
          const onClose = (): void => { gone.abort() }
          req.raw.once('close', onClose)
          try {
            await c.scheduler.waitFinished(id, anyWithTimeout([gone.signal], waitMs))
          } catch {
            // timed out or the client left: answer the view as it is
          } finally {
            req.raw.off('close', onClose)
          }
        }
        return await view(id)
      }
    },
    {
      method: 'DELETE',
      path: '/v1/requests/:id',
      handler: async req => {
        const id = req.params.id
        if (!c.scheduler.has(id)) throw new HttpError(404, `no request ${id} known to this peer`)
        const body = await req.json().catch(() => undefined) as { auth?: unknown } | undefined
        const auth = parseAuth(body?.auth)
        checkFresh(auth)
        const events = c.scheduler.eventsOf(id)
        const started = events.find((e): e is RequestStarted => e.type === 'request-started')
        if (started === undefined) throw new HttpError(404, `request ${id} has not started on this peer`)
        const cancel = { type: 'request-cancelled' as const, from: c.self, ts: Date.now(), request: id, reason: 'cancelled by a client', auth }
        try {
          authorizeCancel(cancel, started, c.policy)
        } catch (err) {
          if (err instanceof NotAuthorizedError) throw new HttpError(403, err.message)
          throw err
        }
        if (events.some(e => e.type === 'request-done' || e.type === 'request-cancelled')) return { requestId: id, cancelled: false }
        await c.bus.publish(cancel)
        return { requestId: id, cancelled: true }
      }
    },
    {
      method: 'GET',
      path: '/v1/requests/:id/logs',
      handler: async req => {
        const id = req.params.id
        const lines: LogLine[] = [...c.scheduler.logsOf(id)]
        const others = c.membership.live().filter(p => p !== c.self)
        const signal = AbortSignal.timeout(PULL_TIMEOUT_MS)
        const remote = await Promise.allSettled(others.map(async p => c.submit.call(peerIdFromString(p), { op: 'logs', requestId: id }, signal)))
        for (const r of remote) if (r.status === 'fulfilled') lines.push(...(r.value.logs ?? []))
        lines.sort((a, b) => a.ts - b.ts)
        return { requestId: id, logs: lines }
      }
    },
    {
      method: 'GET',
      path: '/v1/requests/:id/runs',
      // the runs of the request's instances made on this peer, with the claim each ran under (chaos counts duplicates from these)
      handler: async req => ({ requestId: req.params.id, peer: c.self, runs: c.scheduler.runsOf(req.params.id) })
    },
    {
      method: 'GET',
      path: '/v1/requests/:id/events',
      handler: async (req, res: ServerResponse) => {
        const id = req.params.id
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
        const send = (ev: RequestEvent): void => { res.write(`event: ${ev.type}\ndata: ${eventJson(ev)}\n\n`) }
        for (const ev of c.scheduler.eventsOf(id)) send(ev)
        if (c.scheduler.eventsOf(id).some(e => e.type === 'request-done')) { res.end(); return undefined }
        const onEvent = (e: CustomEvent<RequestEvent>): void => {
          if (e.detail.request !== id) return
          send(e.detail)
          if (e.detail.type === 'request-done') close()
        }
        const keepAlive = setInterval(() => { res.write(': keep-alive\n\n') }, 15_000)
        const close = (): void => {
          clearInterval(keepAlive)
          c.scheduler.removeEventListener('scheduler:event', onEvent)
          if (!res.writableEnded) res.end()
        }
        c.scheduler.addEventListener('scheduler:event', onEvent)
        req.raw.on('close', close)
        return undefined
      }
    }
  ]
}
