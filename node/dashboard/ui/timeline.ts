import { html } from './html.ts'
import { fmtMs, shortId, type StepView } from './api.ts'

const ROW_H = 26
const LABEL_W = 130
const WIDTH = 900

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
  const x = (ms: number): number => LABEL_W + ms * scale
  const height = ROW_H * peers.length + 24
  const ticks = [0, 0.25, 0.5, 0.75, 1].map(f => f * end)
  return html`
    <svg id="timeline" class="timeline" width=${WIDTH} height=${height}>
      ${peers.map((p, row) => html`
        <g key=${p} data-peer=${p}>
          <text x="4" y=${row * ROW_H + 17} class="small"><title>${p}</title>${shortId(p)}</text>
          <line x1=${LABEL_W} x2=${WIDTH} y1=${row * ROW_H + ROW_H} y2=${row * ROW_H + ROW_H} class="grid" />
        </g>`)}
      ${timed.map(s => {
        const row = peers.indexOf(s.peer as string)
        const y = row * ROW_H + 5
        const start = s.startMs ?? 0
        const stop = s.endMs ?? start
        const cold = s.coldStartMs ?? 0
        const ready = s.readyMs ?? start - cold
        const label = `${s.name}${s.index !== null ? `[${s.index}]` : ''}`
        return html`<g class="bar">
          <title>${label} on ${s.peer}: ready ${fmtMs(s.readyMs)}, cold start ${fmtMs(s.coldStartMs)}, ran ${fmtMs(start)}–${fmtMs(s.endMs)}</title>
          ${start - cold > ready ? html`<rect class="wait" x=${x(ready)} y=${y + 6} width=${Math.max(1, (start - cold - ready) * scale)} height="4" />` : null}
          ${cold > 0 ? html`<rect class="cold" x=${x(start - cold)} y=${y} width=${Math.max(1, cold * scale)} height="16" />` : null}
          <rect class=${`run ${s.status}`} x=${x(start)} y=${y} width=${Math.max(2, (stop - start) * scale)} height="16" />
          ${(stop - start) * scale > 40 ? html`<text x=${x(start) + 3} y=${y + 12} class="barlabel">${label}</text>` : null}
        </g>`
      })}
      ${ticks.map((t, i) => html`<text x=${x(t)} y=${height - 6} class="small tick" text-anchor=${i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle'}>${fmtMs(t)}</text>`)}
    </svg>
    <p class="legend small"><span class="key wait"></span> waiting <span class="key cold"></span> cold start <span class="key run ok"></span> running</p>`
}
