import type { RequestView } from '../dscheduler/types.ts'

/** Exactly what `dflow run --json` prints (and `submit`/`status --json`). */
export function runJson (v: RequestView): Record<string, unknown> {
  const out: Record<string, unknown> = { requestId: v.requestId, status: v.status, outputs: v.outputs }
  if (v.error !== undefined) out.error = v.error
  out.steps = v.steps.map(s => ({
    name: s.name,
    index: s.index,
    peer: s.peer,
    status: s.status,
    coldStartMs: s.coldStartMs,
    readyMs: s.readyMs,
    startMs: s.startMs,
    endMs: s.endMs
  }))
  out.totalMs = v.totalMs
  return out
}

const short = (peer: string | null): string => peer === null ? '-' : `…${peer.slice(-6)}`
const ms = (n: number | null): string => n === null ? '-' : `${Math.round(n)}`

/** A readable report: status, outputs, and the per-step timeline (which peer ran what, when, cold or warm). */
export function renderView (v: RequestView, opts: { peers?: Map<string, string> } = {}): string {
  const lines: string[] = []
  lines.push(`request ${v.requestId}: ${v.status}${v.totalMs !== null ? ` in ${Math.round(v.totalMs)} ms` : ''}`)
  if (v.error !== undefined) lines.push(`error: ${v.error}`)
  if (v.status === 'ok') {
    lines.push('outputs:')
    for (const [name, value] of Object.entries(v.outputs)) {
      const text = JSON.stringify(value, null, 2) ?? 'null'
      const clipped = text.length > 2000 ? `${text.slice(0, 2000)}… (${text.length} chars)` : text
      lines.push(`  ${name}: ${clipped.split('\n').join('\n  ')}`)
    }
  }
  lines.push('steps:')
  const label = (s: RequestView['steps'][number]): string => `${s.name}${s.index === null ? '' : `[${s.index}]`}`
  const width = Math.max(4, ...v.steps.map(s => label(s).length))
  lines.push(`  ${'step'.padEnd(width)}  status   peer      ready  start    end  cold`)
  for (const s of v.steps) {
    const peer = s.peer === null ? '-' : (opts.peers?.get(s.peer) ?? short(s.peer))
    const cold = s.coldStartMs === null ? '-' : s.coldStartMs > 0 ? `${Math.round(s.coldStartMs)} ms` : 'warm'
    lines.push(`  ${label(s).padEnd(width)}  ${s.status.padEnd(7)}  ${peer.padEnd(8)} ${ms(s.readyMs).padStart(6)} ${ms(s.startMs).padStart(6)} ${ms(s.endMs).padStart(6)}  ${cold}`)
  }
  return lines.join('\n')
}
