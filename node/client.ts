import * as dagCbor from '@ipld/dag-cbor'
import { randomUUID } from 'node:crypto'
import { encodeBlocks } from './dstore/blocks.ts'
import { fromJsonValue } from './values/codec.ts'
import { signCancel, signedToJson, signSubmit } from './auth/signing.ts'
import type { RequestView } from './dscheduler/types.ts'
import type { HealthResponse } from './api/health.ts'
import type { PrivateKey } from '@libp2p/interface'

export class ApiError extends Error {
  static readonly NAME = 'ApiError'
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.name = ApiError.NAME
    this.status = status
  }
}

export interface ClientOptions {
  /** per HTTP call @default 30000 */
  timeoutMs?: number
  /** the peer's API token (DATA/api.token): writes need it */
  token?: string
  /** the client identity submissions and cancels are signed with (`dflow key new`, DIR/client.key) */
  identity?: PrivateKey
}

/** A small client of one peer's HTTP API (what the CLI, chaos and bench use). */
export class DflowClient {
  readonly api: string
  private readonly timeoutMs: number
  private readonly token?: string
  private readonly identity?: PrivateKey
  private chunkSize?: number

  constructor (api: string, opts: ClientOptions = {}) {
    this.api = api.replace(/\/$/, '')
    this.timeoutMs = opts.timeoutMs ?? 30_000
    this.token = opts.token
    this.identity = opts.identity
  }

  private async call<T> (method: string, path: string, body?: { json?: unknown, bytes?: Uint8Array }, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const headers: Record<string, string> = {}
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    let payload: string | Uint8Array | undefined
    if (body?.json !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body.json) }
    if (body?.bytes !== undefined) { headers['content-type'] = 'application/cbor'; payload = body.bytes }
    let res: Response
    try {
      res = await fetch(this.api + path, { method, headers, body: payload, signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) })
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code
      throw new ApiError(0, `cannot reach ${this.api}${path}: ${cause ?? (err as Error).message}`)
    }
    const text = await res.text()
    let parsed: unknown
    try { parsed = text === '' ? undefined : JSON.parse(text) } catch { parsed = text }
    if (!res.ok) {
      const msg = (parsed as { error?: { message?: string } })?.error?.message ?? text
      throw new ApiError(res.status, `${method} ${path}: ${res.status} ${msg}`)
    }
    return parsed as T
  }

  async health (signal?: AbortSignal): Promise<HealthResponse> {
    return this.call('GET', '/v1/health', undefined, signal)
  }

  async addWorkflow (bundle: Uint8Array): Promise<string> {
    return (await this.call<{ workflow: string }>('POST', '/v1/workflows', { bytes: bundle })).workflow
  }

  /**
   * Submits a request, signed with the client identity: the signature covers the request id (chosen here
   * when not given), the workflow CID, every input's CID (computed as the peer's DStore will), mode, store
   * and deadline.
   */
  async submit (body: { workflow: string, inputs: Record<string, unknown>, requestId?: string, mode?: string, store?: string, deadlineMs?: number }): Promise<string> {
    const full = { ...body, requestId: body.requestId ?? randomUUID(), mode: body.mode ?? 'dataflow', store: body.store ?? 'distributed' }
    let auth
    if (this.identity !== undefined) {
      this.chunkSize ??= (await this.health()).chunkSize
      const inputs: Record<string, string> = {}
      for (const [name, v] of Object.entries(full.inputs)) {
        const isCid = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { $cid?: unknown }).$cid === 'string'
        inputs[name] = isCid ? (v as { $cid: string }).$cid : (await encodeBlocks(fromJsonValue(v, `inputs.${name}`), this.chunkSize)).cid.toString()
      }
      auth = signedToJson(await signSubmit(this.identity, { request: full.requestId, workflow: full.workflow, inputs, mode: full.mode as 'dataflow' | 'control', store: full.store as 'distributed' | 'central', deadlineMs: full.deadlineMs }))
    }
    return (await this.call<{ requestId: string }>('POST', '/v1/requests', { json: { ...full, auth } })).requestId
  }

  /** `waitMs`: the peer answers when the request ends or after this long, whichever is first */
  async status (id: string, signal?: AbortSignal, waitMs?: number): Promise<RequestView> {
    const q = waitMs !== undefined && waitMs > 0 ? `?waitMs=${Math.round(waitMs)}` : ''
    return this.call('GET', `/v1/requests/${encodeURIComponent(id)}${q}`, undefined, signal)
  }

  /**
   * Waits until the request is no longer running: with `onUpdate` it polls every `pollMs` (progress); without,
   * it long-polls (`waitMs`), so the peer builds the view once at the end rather than every few ms.
   */
  async wait (id: string, opts: { signal?: AbortSignal, pollMs?: number, onUpdate?: (v: RequestView) => void } = {}): Promise<RequestView> {
    // well inside the client's own timeout for one call
    const waitMs = opts.onUpdate === undefined ? Math.min(10_000, Math.floor(this.timeoutMs / 2)) : undefined
    for (;;) {
      let view: RequestView | undefined
      try {
        view = await this.status(id, opts.signal, waitMs)
      } catch (err) {
        // a request just submitted elsewhere may not be known here yet
        if (!(err instanceof ApiError && err.status === 404)) throw err
      }
      if (view !== undefined) {
        opts.onUpdate?.(view)
        if (view.status !== 'running') return view
      }
      opts.signal?.throwIfAborted()
      await new Promise(resolve => setTimeout(resolve, opts.pollMs ?? 50))
    }
  }

  /** Cancels a request; signed with the client identity (it must be the submitter's or an authorized one). */
  async cancel (id: string): Promise<{ requestId: string, cancelled: boolean }> {
    const auth = this.identity === undefined ? undefined : signedToJson(await signCancel(this.identity, id))
    return this.call('DELETE', `/v1/requests/${encodeURIComponent(id)}`, auth === undefined ? undefined : { json: { auth } })
  }

  async logs (id: string): Promise<{ requestId: string, logs: Array<{ step: string, index: number | null, peer: string, line: string, ts: number }> }> {
    return this.call('GET', `/v1/requests/${encodeURIComponent(id)}/logs`)
  }

  /** Stores a value: JSON, or bytes (sent as a dag-cbor byte string). */
  async put (value: { bytes: Uint8Array } | { json: unknown }): Promise<{ cid: string, size: number }> {
    return this.call('POST', '/v1/blocks', 'bytes' in value ? { bytes: dagCbor.encode(value.bytes) } : value)
  }

  /** DStore's counters (`GET /v1/store/stats`), e.g. `sharedBytes`: bytes moved from same-host peers without libp2p. */
  async storeStats (): Promise<Record<string, number | boolean>> {
    return this.call('GET', '/v1/store/stats')
  }

  /** The scheduler's, sync's and worker pool's counters (`GET /v1/metrics/scheduler`), e.g. `pool.instanceStarts`. */
  async schedulerMetrics (): Promise<Record<string, unknown> & { pool?: Record<string, number> }> {
    return this.call('GET', '/v1/metrics/scheduler')
  }

  async traffic (): Promise<{ total: { sent: number, received: number }, peers: Record<string, { sent: number, received: number }>, protocols: Record<string, { sent: number, received: number }> }> {
    return this.call('GET', '/v1/metrics/traffic')
  }
}
