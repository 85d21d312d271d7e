/** Table, markdown and chart of `npm run bench:scale`. */
import { loadChartLibs } from '../bench/charts.ts'
import { SCALE_TARGETS, type ScaleResults, type ScaleRow } from './types.ts'

const f = (x: number | null | undefined, digits = 1): string => x == null ? '-' : x.toFixed(digits)
const mm = (x: { mean: number, max: number } | null, digits = 1): string => x == null ? '-' : `${x.mean.toFixed(digits)} (max ${x.max.toFixed(digits)})`

export function tableRows (rows: ScaleRow[]): string[][] {
  return rows.map(r => [
    String(r.peers),
    r.formationMs == null ? `did not form` : f(r.formationMs / 1000),
    mm(r.idleCpuPct, 2),
    mm(r.idleWakeupsPerSec ?? null, 1),
    mm(r.idleBytesPerSec == null ? null : { mean: r.idleBytesPerSec.mean / 1024, max: r.idleBytesPerSec.max / 1024 }, 2),
    mm(r.rssMiB, 0),
    r.eventsPerRequest == null ? '-' : `${f(r.eventsPerRequest.published)} / ${f(r.eventsPerRequest.received)}`,
    f(r.smallP50Ms, 0),
    r.detectMs == null ? '-' : `${r.detectMs.stopped == null ? '>30' : f(r.detectMs.stopped / 1000)} / ${r.detectMs.killed == null ? '>30' : f(r.detectMs.killed / 1000)}`,
    r.fan == null ? '' : `${r.fan.steps} steps, ${f(r.fan.ms / 1000)} s, ${r.fan.ok ? 'correct' : r.fan.steps === 0 ? 'did not finish' : 'WRONG'}, ${r.fan.peersUsed} peers`,
    f(r.loadAvg)
  ])
}

export const HEADERS = ['peers', 'formation s', 'idle CPU % of a core per peer', 'idle wake-ups/s per peer', 'idle KB/s sent per peer', 'RSS MiB per peer', 'events pub / recv per request', 'small p50 ms', 'detect s frozen / killed', 'fan', 'load avg']

export function formatText (rows: ScaleRow[]): string {
  const all = [HEADERS, ...tableRows(rows)]
  const widths = HEADERS.map((_, i) => Math.max(...all.map(r => r[i].length)))
  return all.map(r => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}

export function formatMarkdown (r: ScaleResults, notes: string[]): string {
  const t = SCALE_TARGETS
  const lines = [
    '# Scale: formation, idle cost and memory per testnet size',
    '',
    `Measured with \`npm run bench:scale -- --peers ${r.rows.map(x => x.peers).join(',')}\` on ${r.machine}; commit ${r.commit}; ${r.date}.`,
    `Formation is the wall time of \`dflow testnet up --peers N\`, start-up included. Idle figures: ${r.idleWaitMs / 1000} s after \`up\` returned,`,
    `over ${r.idleWindowMs / 1000} s: utime+stime of each peer process from /proc, wake-ups (voluntary context switches of its main thread),`,
    'libp2p bytes sent (`/v1/metrics/traffic`), VmRSS at the start of the window. Events per request: gossip events',
    'published / received summed over all peers, per request of a small workflow (`testnet/scale/small.yaml`, 6 instances). The fan is `testnet/scale/fan.yaml` (one instance per element).',
    'Failure detection: the last peer is frozen with SIGSTOP (its TCP connections linger, as in a partition), then the one',
    'before it is killed with SIGKILL; time until every other peer\'s `/v1/membership` holds it dead.',
    '',
    `Targets (issue 15): ${t.formationMs.peers} peers form in ≤ ${t.formationMs.max / 1000} s; idle CPU ≤ ${t.idleCpuPct}% of a core per peer; idle traffic ≤ ${t.idleBytesPerSec / 1024} KB/s per peer,`,
    `flat in N; RSS ≤ ${t.rssMiB} MiB per peer; failure detection ≤ ${t.detectMs / 1000} s; a ${t.fanSteps}-step fan on 32 peers finishes correctly.`,
    '',
    `| ${HEADERS.join(' | ')} |`,
    `|${HEADERS.map(() => '---').join('|')}|`,
    ...tableRows(r.rows).map(row => `| ${row.join(' | ')} |`),
    '',
    'Idle bytes sent per peer per second, by protocol:',
    '',
    ...r.rows.map(x => `- ${x.peers} peers: ${Object.entries(x.idleByProtocol).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}`),
    '',
    ...r.rows.filter(x => x.formationError !== undefined).map(x => `- ${x.peers} peers did not form: ${x.formationError?.replace(/\n/g, ' ')}`),
    ...(notes.length > 0 ? ['', ...notes] : []),
    '',
    '![scale](scale.svg)',
    ''
  ]
  return lines.join('\n')
}

/** Four small panels against N, each with its target as a dashed rule. */
export async function scaleChart (r: ScaleResults): Promise<string> {
  const { vega, vl } = await loadChartLibs()
  const data = r.rows.flatMap(x => [
    { metric: 'formation (s)', peers: x.peers, value: x.formationMs == null ? null : x.formationMs / 1000, target: x.peers === SCALE_TARGETS.formationMs.peers ? SCALE_TARGETS.formationMs.max / 1000 : null },
    { metric: 'idle CPU (% of a core per peer)', peers: x.peers, value: x.idleCpuPct?.mean ?? null, target: SCALE_TARGETS.idleCpuPct },
    { metric: 'idle traffic (KB/s per peer)', peers: x.peers, value: x.idleBytesPerSec == null ? null : x.idleBytesPerSec.mean / 1024, target: SCALE_TARGETS.idleBytesPerSec / 1024 },
    { metric: 'RSS (MiB per peer)', peers: x.peers, value: x.rssMiB?.mean ?? null, target: SCALE_TARGETS.rssMiB }
  ]).filter(d => d.value !== null)
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'dflow testnet: formation and idle cost per size', subtitle: [`${r.machine}; commit ${r.commit}; ${r.date}`], anchor: 'start' },
    data: { values: data },
    facet: { field: 'metric', type: 'nominal', title: null },
    columns: 2,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 260,
      height: 160,
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'peers', type: 'quantitative', scale: { type: 'log', base: 2 }, axis: { values: r.rows.map(x => x.peers) } }, y: { field: 'value', type: 'quantitative', title: null } } },
        { mark: { type: 'rule', strokeDash: [4, 4], color: '#d95f02' }, encoding: { y: { aggregate: 'max', field: 'target', type: 'quantitative' } } }
      ]
    }
  }
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' })
  try { return await view.toSVG() } finally { view.finalize() }
}
