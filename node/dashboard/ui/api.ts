/** The JSON the dashboard reads: the peer's own HTTP API, same origin. */

export interface PeerStatusInfo { slots: number, busy: number, storeBytes: number, storeCapacity: number, connections: number, startedAt: number, rss: number }
export interface NetworkPeer { peerId: string, self: boolean, alive: boolean, connected: boolean, status?: PeerStatusInfo, statusError?: string }
export interface NetworkResponse { self: string, at: number, peers: NetworkPeer[] }

export interface RequestSummary {
  requestId: string
  workflow: string
  status: string
  startedAt: number
  mode?: string
  store?: string
  submitter?: string
  finishedAt?: number
  durationMs?: number
}

export interface StepView {
  name: string
  index: number | null
  peer: string | null
  status: 'pending' | 'running' | 'ok' | 'failed' | 'skipped'
  coldStartMs: number | null
  readyMs: number | null
  startMs: number | null
  endMs: number | null
  error?: string
}

export interface RequestView {
  requestId: string
  workflow: string
  mode: string
  store: string
  submitter: string
  status: 'running' | 'ok' | 'failed'
  outputs: Record<string, unknown>
  error?: string
  steps: StepView[]
  totalMs: number | null
}

export interface WorkflowGraph {
  workflow: string
  name: string
  description?: string
  inputs: string[]
  outputs: Record<string, string>
  steps: Array<{ name: string, module: string, export: string, out: string[], foreach?: string, when?: string, trigger: string }>
  edges: Array<{ from: string, to: string, label: string }>
}

export interface LogLine { step: string, index: number | null, peer: string, line: string, ts: number }

/** An event as the SSE route sends it (inline bytes replaced by their size). */
export interface ValueRefJson { cid: string, size: number, holders: string[], inline?: number, length?: number }
export interface EventJson {
  type: string
  from: string
  ts: number
  request: string
  step?: string
  index?: number | null
  output?: string
  element?: number
  value?: ValueRefJson
  error?: string
  status?: string
}

export class ApiError extends Error {
  constructor (readonly status: number, message: string) { super(message); this.name = 'ApiError' }
}

export async function getJson<T> (path: string, timeoutMs = 15_000): Promise<T> {
  const res = await fetch(path, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
  const text = await res.text()
  let body: unknown
  try { body = JSON.parse(text) } catch { throw new ApiError(res.status, `${path}: answer is not JSON (${res.status})`) }
  if (!res.ok) throw new ApiError(res.status, (body as { error?: { message?: string } })?.error?.message ?? `${path}: HTTP ${res.status}`)
  return body as T
}

export function shortId (id: string | null | undefined): string {
  if (id == null) return '-'
  return id.length > 14 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id
}

export function fmtBytes (n: number | undefined): string {
  if (n === undefined) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}

export function fmtMs (ms: number | null | undefined): string {
  if (ms == null) return '-'
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`
}
