import { encodeEvent, type RequestEvent } from '../../protocols/events/index.ts'
import { RequestLogs } from '../../node/dscheduler/event-log.ts'

export const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** Event kinds whose shape the fencing work does not change: the tests build logs from these. */
export function started (request: string, from = 'peerA', ts = 1): RequestEvent {
  return { type: 'request-started', from, ts, request, workflow: CID, inputs: {}, mode: 'dataflow', store: 'distributed', submitter: from }
}
export function claimed (request: string, step: string, attempt = 0, from = 'peerA'): RequestEvent {
  return { type: 'step-claimed', from, ts: 2, request, step, index: null, attempt, incarnation: 7 }
}
export function done (request: string, from = 'peerA'): RequestEvent {
  return { type: 'request-done', from, ts: 9, request, status: 'ok', outputs: {} }
}
export function cancelled (request: string, from = 'peerA'): RequestEvent {
  return { type: 'request-cancelled', from, ts: 8, request, reason: 'user' }
}

/** A request's events: started, `n` claims, optionally done. */
export function requestEvents (request: string, n: number, finished = false, from = 'peerA'): RequestEvent[] {
  const evs = [started(request, from)]
  for (let i = 0; i < n; i++) evs.push(claimed(request, `s${i}`, 0, from))
  if (finished) evs.push(done(request, from))
  return evs
}

/** RequestLogs with no scheduler behind it: what a sync ingests is simply added (and recorded). */
export function logsAlone (onActive?: (request: string) => void): { logs: RequestLogs, ingested: Array<{ event: RequestEvent, from: string }> } {
  const ingested: Array<{ event: RequestEvent, from: string }> = []
  const logs: RequestLogs = new RequestLogs({
    ingest: (entry, event, from) => {
      ingested.push({ event, from })
      return logs.add(event, entry.bytes, entry.proof)
    },
    onActive
  })
  return { logs, ingested }
}

export function fill (logs: RequestLogs, events: RequestEvent[]): void {
  for (const ev of events) logs.add(ev, encodeEvent(ev))
}
