/** One bench request: submit, wait for its end (server-sent events, polling as fallback), read its view. */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DflowClient } from '../../node/client.ts'
import { authHeaderFor } from '../clients.ts'
import type { RequestView } from '../../node/dscheduler/types.ts'
import { MODE_REQUEST, type BenchMode, type Sample } from './types.ts'

export class BenchRequestError extends Error {
  static readonly NAME = 'BenchRequestError'
  constructor (message: string) {
    super(message)
    this.name = BenchRequestError.NAME
  }
}

const DONE_MARK = 'event: request-done'

/** Reads GET /v1/requests/:id/events until the peer ends it (it does after `request-done`). */
export async function waitDoneEvents (api: string, id: string, signal: AbortSignal): Promise<boolean> {
  const res = await fetch(`${api}/v1/requests/${encodeURIComponent(id)}/events`, { headers: authHeaderFor(api), signal })
  if (!res.ok || res.body == null) return false
  // the last characters seen, so that an event name split between two chunks is still found. (A 4 KiB window
  // of the text lost the name behind a request-done whose data line was longer, as genome's 28 outputs make it:
  // the bench then took the fallback below and counted 70-110 ms of status reads into every genome request.)
  let tail = ''
  let done = false
  const decoder = new TextDecoder()
  // DFLOW_BENCH_EVENTS_DIR=DIR: every request's events as the submitting peer applied them, one JSON line each
  // with the time this client received it (`at`), in DIR/<request>.jsonl, to trace slow requests step by step
  const dir = process.env.DFLOW_BENCH_EVENTS_DIR
  const lines: string[] = []
  let pending = ''
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const text = decoder.decode(chunk, { stream: true })
    if ((tail + text).includes(DONE_MARK)) done = true
    tail = (tail + text).slice(-DONE_MARK.length)
    if (dir !== undefined) {
      const at = Date.now()
      const parts = (pending + text).split('\n\n')
      pending = parts.pop() ?? ''
      for (const part of parts) {
        const data = /^data: (.*)$/m.exec(part)?.[1]
        if (data !== undefined) lines.push(`{"at":${at},"event":${data}}`)
      }
    }
  }
  if (dir !== undefined) await writeFile(join(dir, `${id}.jsonl`), lines.join('\n') + '\n')
  return done
}

/** Sum of every peer's connection-level bytes sent (libp2p traffic only; the HTTP API is not counted). */
export async function totalSent (clients: DflowClient[]): Promise<number> {
  const all = await Promise.all(clients.map(async c => (await c.traffic()).total.sent))
  return all.reduce((a, b) => a + b, 0)
}

/**
 * Sum of every peer's bytes taken from same-host peers' shared files (DStore's `sharedBytes`): data that moved
 * between peers without libp2p, so `totalSent` never sees it. 0 from peers that do not report it.
 */
export async function totalShared (clients: DflowClient[]): Promise<number> {
  const all = await Promise.all(clients.map(async c => Number((await c.storeStats()).sharedBytes ?? 0)))
  return all.reduce((a, b) => a + b, 0)
}

export interface RequestSpec {
  workflow: string
  postAt: number | null
  cid: string
  mode: BenchMode
  inputs: Record<string, unknown>
  peer: number
  requestId: string
}

/**
 * Submits and waits. `latencyMs` is client-measured (submit sent -> end seen); `onDone` runs right after the
 * end is seen and before the view is fetched (reading a view can move output values between peers).
 */
export async function runRequest (client: DflowClient, spec: RequestSpec, timeoutMs: number, onDone?: () => Promise<void>): Promise<Omit<Sample, 'bytes' | 'sharedBytes'>> {
  const signal = AbortSignal.timeout(timeoutMs)
  const submittedAt = Date.now()
  const t0 = performance.now()
  const id = await client.submit({ workflow: spec.cid, inputs: spec.inputs, requestId: spec.requestId, ...MODE_REQUEST[spec.mode] })
  let ended = false
  try {
    ended = await waitDoneEvents(client.api, id, signal)
  } catch (err) {
    if (signal.aborted) throw new BenchRequestError(`request ${id} (${spec.workflow}, ${spec.mode}) did not finish in ${timeoutMs} ms`)
  }
  let view: RequestView | undefined
  if (!ended) view = await client.wait(id, { signal, pollMs: 10 })
  const latencyMs = performance.now() - t0
  const doneAt = Date.now()
  await onDone?.()
  view ??= await client.status(id, signal)
  if (view.status === 'running') view = await client.wait(id, { signal, pollMs: 10 })
  const steps = view.steps.map(s => ({ name: s.name, index: s.index, peer: s.peer, status: s.status, coldStartMs: s.coldStartMs, readyMs: s.readyMs, startMs: s.startMs, endMs: s.endMs }))
  return {
    workflow: spec.workflow,
    mode: spec.mode,
    postAt: spec.postAt,
    requestId: id,
    status: view.status === 'ok' ? 'ok' : 'failed',
    ...(view.error !== undefined ? { error: view.error } : {}),
    latencyMs,
    serverMs: view.totalMs,
    coldStartMs: steps.reduce((a, s) => a + (s.coldStartMs ?? 0), 0),
    coldSteps: steps.filter(s => (s.coldStartMs ?? 0) > 0).length,
    peer: spec.peer,
    submittedAt,
    doneAt,
    steps
  }
}
