import { html } from './html.ts'
import { usePoll } from './hooks.ts'
import { fmtBytes, fmtMs, shortId, type NetworkPeer, type NetworkResponse, type RequestSummary } from './api.ts'

function PeerRow ({ p }: { p: NetworkPeer }) {
  const s = p.status
  const state = p.alive ? 'alive' : 'dead'
  return html`
    <tr data-peer-id=${p.peerId} data-state=${state}>
      <td><code title=${p.peerId} class="peer-id">${shortId(p.peerId)}</code>${p.self ? html` <span class="tag">this peer</span>` : null}</td>
      <td><span class=${`badge ${state}`} data-role="state">${state}</span></td>
      <td>${p.self ? '-' : p.connected ? 'yes' : 'no'}</td>
      <td>${s?.connections ?? '-'}</td>
      <td>${s !== undefined ? html`<span class="slots">${s.busy} busy / ${Math.max(0, s.slots - s.busy)} free</span>` : '-'}</td>
      <td>${s !== undefined ? `${fmtBytes(s.storeBytes)} of ${fmtBytes(s.storeCapacity)}` : '-'}</td>
      <td>${s !== undefined ? fmtBytes(s.rss) : '-'}</td>
      <td class="muted small">${p.statusError ?? ''}</td>
    </tr>`
}

export function NetworkView () {
  const net = usePoll<NetworkResponse>('/v1/network', 2000)
  const peers = net.data?.peers ?? []
  const alive = peers.filter(p => p.alive).length
  return html`
    <section id="network">
      <h2>Network <span class="muted">${alive}/${peers.length} alive</span></h2>
      ${net.error !== undefined ? html`<p class="error">${net.error}</p>` : null}
      <table>
        <thead><tr><th>peer</th><th>state</th><th>connected here</th><th>connections</th><th>slots</th><th>store</th><th>memory</th><th></th></tr></thead>
        <tbody>${peers.map(p => html`<${PeerRow} key=${p.peerId} p=${p} />`)}</tbody>
      </table>
    </section>`
}

export function RequestsView () {
  const list = usePoll<{ requests: RequestSummary[] }>('/v1/requests', 2000)
  const rows = list.data?.requests ?? []
  const now = Date.now()
  return html`
    <section id="requests">
      <h2>Requests <span class="muted">${rows.length}</span></h2>
      ${list.error !== undefined ? html`<p class="error">${list.error}</p>` : null}
      ${rows.length === 0 ? html`<p class="muted">No request yet. Submit one with <code>dflow submit --api ${location.origin} WORKFLOW.yaml</code>.</p>` : html`
      <table>
        <thead><tr><th>request</th><th>status</th><th>mode</th><th>submitter</th><th>started</th><th>duration</th></tr></thead>
        <tbody>${rows.map(r => html`
          <tr data-request-id=${r.requestId} data-status=${r.status}>
            <td><a href=${`/requests/${encodeURIComponent(r.requestId)}`}><code>${r.requestId}</code></a></td>
            <td><span class=${`badge ${r.status}`}>${r.status}</span></td>
            <td>${r.mode ?? '-'}</td>
            <td><code title=${r.submitter ?? ''}>${shortId(r.submitter)}</code></td>
            <td>${new Date(r.startedAt).toLocaleTimeString()}</td>
            <td>${fmtMs(r.durationMs ?? (r.status === 'running' ? now - r.startedAt : undefined))}</td>
          </tr>`)}
        </tbody>
      </table>`}
    </section>`
}

export function HomePage () {
  return html`<${NetworkView} /><${RequestsView} />`
}
