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
    `warm-up ${r.warmup}/workflow/mode, seed ${r.seed}${r.sharedStore === false ? ', same-host store off' : ''}`
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
      header: ['workflow', 'mode', 'n', 'p50', 'p99', 'mean', 'crit.path', 'p50/crit', 'LB', 'p50/LB', 'bytes', 'shm bytes', 'cold ms', 'cold steps'],
      rows: rows.map(x => [x.workflow, x.mode, `${x.requests}${x.failed > 0 ? ` (+${x.failed} failed)` : ''}`, ms(x.p50Ms), ms(x.p99Ms), ms(x.meanMs), ms(x.criticalPathMs), num(x.overCriticalPath), ms(x.lowerBoundMs ?? null), num(x.overLowerBound ?? null), formatBytes(x.bytes), formatBytes(x.sharedBytes ?? 0), ms(x.coldStartMs), num(x.coldSteps)])
    })
    const others = r.modes.filter(m => m !== 'dataflow')
    if (!r.modes.includes('dataflow') || others.length === 0) continue
    const header = ['workflow']
    for (const f of ['p50', 'p99', 'bytes', 'cold', 'LB']) for (const m of others) header.push(`${f} df/${m === 'control' ? 'ctl' : 'cen'}`)
    const perWorkflow = [...new Set(rows.map(x => x.workflow))].map(w => rows.find(x => x.workflow === w && x.mode === 'dataflow') as ResultRow)
    out.push({
      title: `${name}: ratios dataflow / other mode (below 1 = dataflow better)`,
      header,
      textCols: 1,
      rows: perWorkflow.filter(Boolean).map(row => {
        const cells = [row.workflow]
        for (const f of ['p50Ms', 'p99Ms', 'bytes', 'coldStartMs', 'lowerBoundMs'] as const) for (const m of others) cells.push(num(ratio(r.rows, row, f, m)))
        return cells
      })
    })
  }
  const cold = coldTable(r)
  if (cold !== null) out.push(cold)
  const yard = yardstickTable(r)
  if (yard !== null) out.push(yard)
  return out
}

/** Cold starts seen by requests (mean per request) and control / dataflow, when any request met one. */
function coldTable (r: BenchResults): Table | null {
  // only for runs made to show cold starts (idle instances stopped, or a start cost), so other tables stay fixed
  if ((r.idleInstance === null && r.initMs === 0) || !r.rows.some(x => x.coldStartMs > 0) || !r.modes.includes('dataflow')) return null
  const others = r.modes.filter(m => m !== 'dataflow')
  const header = ['workflow', 'postAt', 'cold ms dataflow', ...others.map(m => `cold ms ${m}`), ...others.map(m => `${m}/dataflow`)]
  const rows = r.rows.filter(x => x.mode === 'dataflow').map(df => {
    const of = (m: string): ResultRow | undefined => r.rows.find(x => x.workflow === df.workflow && x.postAt === df.postAt && x.mode === m)
    const inv = (m: string): string => { const o = of(m); return o === undefined || df.coldStartMs === 0 ? '-' : num(o.coldStartMs / df.coldStartMs) }
    return [df.workflow, df.postAt === null ? '-' : String(df.postAt), ms(df.coldStartMs), ...others.map(m => ms(of(m)?.coldStartMs ?? null)), ...others.map(inv)]
  })
  return { title: `cold start seen by requests (ms per request, mean; idle-instance ${r.idleInstance ?? 'peer default'})${r.loop === 'open' ? `, open loop ${r.ratePerMin}/min` : ''}: other mode / dataflow (above 1 = dataflow better)`, header, rows, textCols: 2 }
}

/** dflow p50 next to the central engine's on the same shapes (`--yardstick dask`). */
function yardstickTable (r: BenchResults): Table | null {
  const y = r.yardstick
  if (y === undefined) return null
  if ('skipped' in y) return { title: `yardstick ${y.engine} skipped: ${y.skipped}`, header: ['workflow'], rows: [], textCols: 1 }
  const header = ['workflow', 'postAt', 'LB', `${y.engine} p50`, `${y.engine} p50/LB`]
  for (const m of r.modes) header.push(`${m} p50`, `${m}/${y.engine}`)
  const rows: string[][] = []
  for (const d of y.rows) {
    for (const postAt of [...new Set(r.rows.filter(x => x.workflow === d.workflow).map(x => x.postAt))]) {
      const cells = [d.workflow, postAt === null ? '-' : String(postAt), ms(d.lowerBoundMs), ms(d.p50Ms), num(d.lowerBoundMs === null || d.lowerBoundMs === 0 ? null : d.p50Ms / d.lowerBoundMs)]
      for (const m of r.modes) {
        const row = r.rows.find(x => x.workflow === d.workflow && x.postAt === postAt && x.mode === m)
        cells.push(ms(row?.p50Ms ?? null), num(row === undefined || d.p50Ms === 0 ? null : row.p50Ms / d.p50Ms))
      }
      rows.push(cells)
    }
  }
  return { title: `side by side with ${y.engine} ${y.version} (LocalCluster ${y.workers} workers x ${y.threads} threads, processes; sleeping tasks, same scales, ${y.rows[0]?.requests ?? 0} requests): p50 ms and dflow / ${y.engine} (target <= 0.9)`, header, rows, textCols: 2 }
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
    `duration: ${(r.durationMs / 1000).toFixed(0)} s`,
    ...(r.instanceStarts != null ? [`function instances started: ${r.instanceStarts}${r.stemCellStarts != null ? `, ${r.stemCellStarts} of them in stem cells` : ''} (all peers, all modes, warm-ups included)${r.stemCells != null ? `; --stem-cells ${r.stemCells}` : ''}`] : [])
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
