import { useEffect, useState } from 'preact/hooks'
import { html } from './html.ts'
import { DagView } from './dag.ts'
import { TimelineView } from './timeline.ts'
import { fmtBytes, fmtMs, getJson, shortId, type EventJson, type LogLine, type RequestView, type WorkflowGraph } from './api.ts'

const EVENT_TYPES = ['request-started', 'step-claimed', 'steps-assigned', 'output-ready', 'element-posted', 'step-done', 'step-failed', 'request-done', 'request-cancelled', 'value-lost']

/**
 * Bytes that crossed between peers, estimated from the events: every value too large to travel inline, once
 * per other peer that ran a step reading it. Inline values ride in the gossip events and are not counted.
 */
function bytesMoved (events: EventJson[], graph: WorkflowGraph | undefined, view: RequestView | undefined): { moved: number, stored: number } {
  let moved = 0
  let stored = 0
  // a value comes in an output-ready or element-posted, or among the outputs a step-done announces
  const values = events.flatMap(ev => ev.type === 'step-done'
    ? Object.entries(ev.outputs ?? {}).map(([output, value]) => ({ ev, output, value }))
    : (ev.type === 'output-ready' || ev.type === 'element-posted') && ev.value !== undefined ? [{ ev, output: ev.output ?? '', value: ev.value }] : [])
  for (const { ev, output, value } of values) {
    if (value.inline !== undefined) continue
    stored += value.size
    const consumers = new Set((graph?.edges ?? []).filter(e => e.from === ev.step && e.label.startsWith(`${output} →`)).map(e => e.to))
    const peers = new Set((view?.steps ?? []).filter(s => consumers.has(s.name) && s.peer !== null && s.peer !== ev.from).map(s => s.peer))
    moved += value.size * peers.size
  }
  return { moved, stored }
}

function useRequest (id: string) {
  const [view, setView] = useState<RequestView>()
  const [error, setError] = useState<string>()
  const [events, setEvents] = useState<EventJson[]>([])
  const [logs, setLogs] = useState<LogLine[]>([])
  useEffect(() => {
    const enc = encodeURIComponent(id)
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let finished = false
    const refresh = async (): Promise<void> => {
      try {
        const v = await getJson<RequestView>(`/v1/requests/${enc}`, 35_000)
        if (stopped) return
        setView(v)
        setError(undefined)
        if (v.status !== 'running' && !finished) { finished = true; void loadLogs() }
      } catch (err) {
        if (!stopped) setError((err as Error).message)
      }
    }
    const loadLogs = async (): Promise<void> => {
      try {
        const l = await getJson<{ logs: LogLine[] }>(`/v1/requests/${enc}/logs`)
        if (!stopped) setLogs(l.logs)
      } catch {}
    }
    // events arrive in bursts: refresh the view at most every 250 ms
    const soon = (): void => {
      if (timer !== undefined) return
      timer = setTimeout(() => { timer = undefined; void refresh() }, 250)
    }
    void refresh()
    void loadLogs()
    const es = new EventSource(`/v1/requests/${enc}/events`)
    const onEvent = (e: MessageEvent<string>): void => {
      let ev: EventJson
      try { ev = JSON.parse(e.data) as EventJson } catch { return }
      setEvents(list => [...list, ev])
      soon()
      // the server ends the stream after these; closing keeps EventSource from reconnecting and replaying
      if (ev.type === 'request-done' || ev.type === 'request-cancelled') es.close()
    }
    for (const t of EVENT_TYPES) es.addEventListener(t, onEvent as EventListener)
    // a peer that learns of the request only from others gets no events: poll while it runs
    const poll = setInterval(() => { if (!finished) { void refresh(); void loadLogs() } }, 3000)
    return () => { stopped = true; es.close(); clearTimeout(timer); clearInterval(poll) }
  }, [id])
  return { view, error, events, logs }
}

function useGraph (cid: string | undefined): WorkflowGraph | undefined {
  const [graph, setGraph] = useState<WorkflowGraph>()
  useEffect(() => {
    if (cid === undefined) return
    let stopped = false
    getJson<WorkflowGraph>(`/v1/workflows/${encodeURIComponent(cid)}`, 20_000).then(g => { if (!stopped) setGraph(g) }, () => {})
    return () => { stopped = true }
  }, [cid])
  return graph
}

export function RequestPage ({ id }: { id: string }) {
  const { view, error, events, logs } = useRequest(id)
  const graph = useGraph(view?.workflow)
  const { moved, stored } = bytesMoved(events, graph, view)
  const cold = (view?.steps ?? []).filter(s => (s.coldStartMs ?? 0) > 0)
  const failures = (view?.steps ?? []).filter(s => s.error !== undefined)
  return html`
    <section id="request" data-request-id=${id} data-status=${view?.status ?? 'unknown'}>
      <p><a href="/">← network and requests</a></p>
      <h2>Request <code>${id}</code> ${view !== undefined ? html`<span class=${`badge ${view.status}`} id="request-status">${view.status}</span>` : null}</h2>
      ${error !== undefined && view === undefined ? html`<p class="error">${error}</p>` : null}
      ${view !== undefined ? html`
        <dl class="facts">
          <dt>workflow</dt><dd>${graph?.name ?? ''} <code title=${view.workflow}>${shortId(view.workflow)}</code></dd>
          <dt>mode</dt><dd>${view.mode} (store ${view.store})</dd>
          <dt>submitter</dt><dd><code title=${view.submitter}>${shortId(view.submitter)}</code></dd>
          <dt>duration</dt><dd>${fmtMs(view.totalMs)}</dd>
          <dt>bytes moved</dt><dd id="bytes-moved">${fmtBytes(moved)} <span class="muted">(≈, of ${fmtBytes(stored)} stored outside events)</span></dd>
          <dt>cold starts</dt><dd id="cold-starts">${cold.length} <span class="muted">(${fmtMs(cold.reduce((a, s) => a + (s.coldStartMs ?? 0), 0))} in total)</span></dd>
        </dl>
        <h3>Workflow</h3>
        <${DagView} graph=${graph} steps=${view.steps} />
        <h3>Timeline</h3>
        <${TimelineView} steps=${view.steps} />
        <h3>Steps</h3>
        <table id="steps">
          <thead><tr><th>step</th><th>index</th><th>peer</th><th>state</th><th>ready</th><th>cold start</th><th>start</th><th>end</th><th>error</th></tr></thead>
          <tbody>${view.steps.map(s => html`
            <tr data-step=${s.name} data-index=${s.index ?? ''} data-state=${s.status} data-peer=${s.peer ?? ''}>
              <td>${s.name}</td><td>${s.index ?? ''}</td>
              <td><code title=${s.peer ?? ''}>${shortId(s.peer)}</code></td>
              <td><span class=${`badge ${s.status}`}>${s.status}</span></td>
              <td>${fmtMs(s.readyMs)}</td><td>${fmtMs(s.coldStartMs)}</td><td>${fmtMs(s.startMs)}</td><td>${fmtMs(s.endMs)}</td>
              <td class="error">${s.error ?? ''}</td>
            </tr>`)}
          </tbody>
        </table>
        <h3>Outputs</h3>
        ${view.status === 'ok' ? html`<pre id="outputs">${JSON.stringify(view.outputs, null, 2)}</pre>` : html`<p class="muted">${view.status === 'running' ? 'not yet' : 'none'}</p>`}
        ${view.error !== undefined || failures.length > 0 ? html`
          <h3>Errors</h3>
          <ul id="errors" class="error">
            ${view.error !== undefined ? html`<li>${view.error}</li>` : null}
            ${failures.map(s => html`<li>${s.name}${s.index !== null ? `[${s.index}]` : ''} on <code title=${s.peer ?? ''}>${shortId(s.peer)}</code>: ${s.error}</li>`)}
          </ul>` : null}
        <h3>Logs <span class="muted">${logs.length}</span></h3>
        ${logs.length === 0 ? html`<p class="muted">no lines written by functions</p>` : html`
          <pre id="logs">${logs.map(l => `${new Date(l.ts).toISOString().slice(11, 23)} ${shortId(l.peer)} ${l.step}${l.index !== null ? `[${l.index}]` : ''}: ${l.line}`).join('\n')}</pre>`}
        <h3>Events <span class="muted">${events.length}</span></h3>
        <details><summary>show</summary>
          <pre>${events.map(e => `${new Date(e.ts).toISOString().slice(11, 23)} ${shortId(e.from)} ${e.type}${e.step !== undefined ? ` ${e.step}${e.index != null ? `[${e.index}]` : ''}` : ''}${e.output !== undefined ? `.${e.output}` : ''}${e.value !== undefined ? ` ${fmtBytes(e.value.size)}${e.value.inline !== undefined ? ' inline' : ''}` : ''}${e.error !== undefined ? ` ${e.error}` : ''}`).join('\n')}</pre>
        </details>` : html`<p class="muted">loading…</p>`}
    </section>`
}
