/** The bench's tables (terminal and Markdown) and results.json. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ratio } from './stats.ts'
import type { BenchResults, ResultRow } from './types.ts'

export function formatBytes (n: number): string {
  if (!Number.isFinite(n)) return '-'
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${n} B`
}

const ms = (x: number | null): string => x === null || !Number.isFinite(x) ? '-' : `${Math.round(x)}`
const num = (x: number | null): string => x === null || !Number.isFinite(x) ? '-' : x.toFixed(2)

/** The factors line printed beside every table. */
export function factorsLine (r: BenchResults): string {
  return `peers ${r.peers}, slots ${r.slots}, replicas ${r.replicas}, timeScale ${r.timeScale}, sizeScale ${r.sizeScale}, initMs ${r.initMs}, ` +
    `${r.loop === 'closed' ? 'closed loop' : `open loop ${r.ratePerMin}/min`}, link ${r.linkRate === null ? 'loopback (no limit)' : `${formatBytes(r.linkRate)}/s per link`}, ` +
    `warm-up ${r.warmup}/workflow/mode, seed ${r.seed}`
}

export interface Table { title: string, header: string[], rows: string[][], /** leading text columns @default 2 */ textCols?: number }

/** Per postAt: the absolute table (one row per workflow and mode) and the ratio table (one row per workflow). */
export function tables (r: BenchResults): Table[] {
  const out: Table[] = []
  const groups = [...new Set(r.rows.map(x => x.postAt))]
  for (const postAt of groups) {
    const rows = r.rows.filter(x => x.postAt === postAt)
    const name = postAt === null ? 'example workflows (post at return)' : `postAt ${postAt}`
    out.push({
      title: `${name}: latency (client-measured, ms), bytes between peers and cold start per request`,
      header: ['workflow', 'mode', 'n', 'p50', 'p99', 'mean', 'crit.path', 'p50/crit', 'bytes', 'cold ms', 'cold steps'],
      rows: rows.map(x => [x.workflow, x.mode, `${x.requests}${x.failed > 0 ? ` (+${x.failed} failed)` : ''}`, ms(x.p50Ms), ms(x.p99Ms), ms(x.meanMs), ms(x.criticalPathMs), num(x.overCriticalPath), formatBytes(x.bytes), ms(x.coldStartMs), num(x.coldSteps)])
    })
    const others = r.modes.filter(m => m !== 'dataflow')
    if (!r.modes.includes('dataflow') || others.length === 0) continue
    const header = ['workflow']
    for (const f of ['p50', 'p99', 'bytes', 'cold']) for (const m of others) header.push(`${f} df/${m === 'control' ? 'ctl' : 'cen'}`)
    const perWorkflow = [...new Set(rows.map(x => x.workflow))].map(w => rows.find(x => x.workflow === w && x.mode === 'dataflow') as ResultRow)
    out.push({
      title: `${name}: ratios dataflow / other mode (below 1 = dataflow better)`,
      header,
      textCols: 1,
      rows: perWorkflow.filter(Boolean).map(row => {
        const cells = [row.workflow]
        for (const f of ['p50Ms', 'p99Ms', 'bytes', 'coldStartMs'] as const) for (const m of others) cells.push(num(ratio(r.rows, row, f, m)))
        return cells
      })
    })
  }
  return out
}

export function textTable (t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map(row => (row[i] ?? '').length)))
  const text = t.textCols ?? 2
  const line = (cells: string[]): string => cells.map((c, i) => i < text ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ').trimEnd()
  return [t.title, line(t.header), ...t.rows.map(line)].join('\n')
}

export function markdownTable (t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|')
  return [
    `**${t.title}**`,
    '',
    `| ${t.header.map(esc).join(' | ')} |`,
    `| ${t.header.map((_, i) => i < (t.textCols ?? 2) ? '---' : '---:').join(' | ')} |`,
    ...t.rows.map(row => `| ${row.map(esc).join(' | ')} |`)
  ].join('\n')
}

/** Everything printed at the end of a run (without --json). */
export function renderText (r: BenchResults): string {
  const head = [
    `dflow bench — ${r.date}, commit ${r.commit}`,
    `machine: ${r.machine}`,
    `factors: ${factorsLine(r)}`,
    `idle traffic: ${formatBytes(r.idleBytesPerSec)}/s (all peers; included in bytes)`,
    `duration: ${(r.durationMs / 1000).toFixed(0)} s`
  ]
  return [head.join('\n'), ...tables(r).map(t => `${textTable(t)}\n  (${factorsLine(r)})`)].join('\n\n')
}

/** results.json: the fields the issue fixes first, then what this bench adds. */
export async function writeResultsJson (r: BenchResults, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true })
  const file = join(outDir, 'results.json')
  const { machine, date, commit, peers, slots, timeScale, sizeScale, initMs, rows, ...rest } = r
  await writeFile(file, JSON.stringify({ machine, date, commit, peers, slots, timeScale, sizeScale, initMs, rows, ...rest }, null, 2) + '\n')
  return file
}
