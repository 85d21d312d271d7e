import type { RequestView } from './dscheduler/types.ts'

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
}

/** A small client of one peer's HTTP API (what the CLI, chaos and bench use). */
export class DflowClient {
  readonly api: string
  private readonly timeoutMs: number

  constructor (api: string, opts: ClientOptions = {}) {
    this.api = api.replace(/\/$/, '')
    this.timeoutMs = opts.timeoutMs ?? 30_000
  }

  private async call<T> (method: string, path: string, body?: { json?: unknown, bytes?: Uint8Array }, signal?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const headers: Record<string, string> = {}
    let payload: string | Uint8Array | undefined
    if (body?.json !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body.json) }
    if (body?.bytes !== undefined) { headers['content-type'] = 'application/octet-stream'; payload = body.bytes }
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

  async health (signal?: AbortSignal): Promise<{ peerId: string, multiaddrs: string[], uptimeMs: number, version: string }> {
    return this.call('GET', '/v1/health', undefined, signal)
  }

  async addWorkflow (bundle: Uint8Array): Promise<string> {
    return (await this.call<{ workflow: string }>('POST', '/v1/workflows', { bytes: bundle })).workflow
  }

  async submit (body: { workflow: string, inputs: Record<string, unknown>, requestId?: string, mode?: string, store?: string, deadlineMs?: number }): Promise<string> {
    return (await this.call<{ requestId: string }>('POST', '/v1/requests', { json: body })).requestId
  }

  async status (id: string, signal?: AbortSignal): Promise<RequestView> {
    return this.call('GET', `/v1/requests/${encodeURIComponent(id)}`, undefined, signal)
  }

  /** Polls until the request is no longer running. */
  async wait (id: string, opts: { signal?: AbortSignal, pollMs?: number, onUpdate?: (v: RequestView) => void } = {}): Promise<RequestView> {
    for (;;) {
      let view: RequestView | undefined
      try {
        view = await this.status(id, opts.signal)
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

  async cancel (id: string): Promise<{ requestId: string, cancelled: boolean }> {
    return this.call('DELETE', `/v1/requests/${encodeURIComponent(id)}`)
  }

  async logs (id: string): Promise<{ requestId: string, logs: Array<{ step: string, index: number | null, peer: string, line: string, ts: number }> }> {
    return this.call('GET', `/v1/requests/${encodeURIComponent(id)}/logs`)
  }

  async put (value: { bytes: Uint8Array } | { json: unknown }): Promise<{ cid: string, size: number }> {
    return this.call('POST', '/v1/blocks', value)
  }

  async traffic (): Promise<{ total: { sent: number, received: number }, peers: Record<string, { sent: number, received: number }>, protocols: Record<string, { sent: number, received: number }> }> {
    return this.call('GET', '/v1/metrics/traffic')
  }
}
