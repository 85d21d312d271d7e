import { html } from './html.ts'
import { fmtMs, shortId, type StepView } from './api.ts'

const LANE_H = 20
const ROW_PAD = 6
const LABEL_W = 130
const WIDTH = 900

interface Bar { s: StepView, from: number, to: number, lane: number }

/** Instances of one peer that overlap in time go on separate lanes of the peer's row (first lane free wins). */
function lanes (steps: StepView[]): { bars: Bar[], count: number } {
  const sorted = steps.map(s => {
    const start = s.startMs ?? 0
    const from = Math.min(s.readyMs ?? start, start - (s.coldStartMs ?? 0))
    return { s, from, to: s.endMs ?? start, lane: 0 }
  }).sort((a, b) => a.from - b.from)
  const ends: number[] = []
  for (const b of sorted) {
    let lane = ends.findIndex(end => end <= b.from)
    if (lane === -1) { lane = ends.length; ends.push(0) }
    ends[lane] = b.to
    b.lane = lane
  }
  return { bars: sorted, count: Math.max(1, ends.length) }
}

/**
 * One row per peer; per instance it ran: waiting (ready until the function instance was asked for), cold start
 * (the instance starting, just before the run) and running, coloured by the instance's state.
 */
export function TimelineView ({ steps }: { steps: StepView[] }) {
  const timed = steps.filter(s => s.peer !== null && s.startMs !== null)
  if (timed.length === 0) return html`<p class="muted">no instance has finished yet</p>`
  const peers = [...new Set(timed.map(s => s.peer as string))].sort()
  const end = Math.max(1, ...timed.map(s => s.endMs ?? s.startMs ?? 0))
  const scale = (WIDTH - LABEL_W - 10) / end
  const x = (ms: number): number => LABEL_W + Math.max(0, ms) * scale
  let top = 0
  const rows = peers.map(p => {
    const l = lanes(timed.filter(s => s.peer === p))
    const row = { peer: p, top, height: l.count * LANE_H + ROW_PAD, bars: l.bars }
    top += row.height
    return row
  })
  const height = top + 24
  const ticks = [0, 0.25, 0.5, 0.75, 1].map(f => f * end)
  return html`
    <svg id="timeline" class="timeline" width=${WIDTH} height=${height}>
      ${rows.map(r => html`
        <g key=${r.peer} data-peer=${r.peer}>
          <text x="4" y=${r.top + 16} class="small"><title>${r.peer}</title>${shortId(r.peer)}</text>
          <line x1=${LABEL_W} x2=${WIDTH} y1=${r.top + r.height} y2=${r.top + r.height} class="grid" />
          ${r.bars.map(({ s, lane }) => {
            const y = r.top + ROW_PAD / 2 + lane * LANE_H
            const start = s.startMs ?? 0
            const stop = s.endMs ?? start
            const cold = s.coldStartMs ?? 0
            const ready = s.readyMs ?? start - cold
            const label = `${s.name}${s.index !== null ? `[${s.index}]` : ''}`
            return html`<g class="bar" data-step=${s.name} data-index=${s.index ?? ''}>
              <title>${label} on ${s.peer}: ready ${fmtMs(s.readyMs)}, cold start ${fmtMs(s.coldStartMs)}, ran ${fmtMs(start)}–${fmtMs(s.endMs)}</title>
              ${start - cold > ready ? html`<rect class="wait" x=${x(ready)} y=${y + 7} width=${Math.max(1, (start - cold - ready) * scale)} height="3" />` : null}
              ${cold > 0 ? html`<rect class="cold" x=${x(start - cold)} y=${y + 1} width=${Math.max(1, cold * scale)} height="15" />` : null}
              <rect class=${`run ${s.status}`} x=${x(start)} y=${y + 1} width=${Math.max(2, (stop - start) * scale)} height="15" />
              ${(stop - start) * scale > 48 ? html`<text x=${x(start) + 3} y=${y + 12} class="barlabel">${label}</text>` : null}
            </g>`
          })}
        </g>`)}
      ${ticks.map((t, i) => html`<text x=${x(t)} y=${height - 6} class="small tick" text-anchor=${i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle'}>${fmtMs(t)}</text>`)}
    </svg>
    <p class="legend small"><span class="key wait"></span> waiting <span class="key cold"></span> cold start <span class="key run ok"></span> running</p>`
}
