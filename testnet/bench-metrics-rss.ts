/**
 * What libp2p's own metrics (--libp2p-metrics) cost a resting peer: RSS of N idle peer processes with and
 * without them, after the same settle time and one /metrics scrape each. `npm run bench:metrics-rss`
 * (PEERS=4 SETTLE_S=20). Figures from a busy machine are noisy: compare medians, re-run on a quiet one.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestnet } from './index.ts'

const PEERS = Number(process.env.PEERS ?? 4)
const SETTLE_MS = Number(process.env.SETTLE_S ?? 20) * 1000

async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  if (m == null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const mib = (n: number): string => (n / 2 ** 20).toFixed(1)

async function measure (flags: string[]): Promise<{ rss: number[], metricsBytes: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'dflow-rss-'))
  const net = await startTestnet({ peers: PEERS, dir, flags })
  try {
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    let metricsBytes = 0
    for (const p of net.manifest.peers) metricsBytes = Math.max(metricsBytes, (await (await fetch(`${p.api}/metrics`)).text()).length)
    await new Promise(resolve => setTimeout(resolve, 5000))
    return { rss: await Promise.all(net.manifest.peers.map(async p => rssOf(p.pid))), metricsBytes }
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

const results: Record<string, { rss: number[], metricsBytes: number }> = {}
// alternate so a load change on the machine hits both variants alike
for (const round of [0, 1]) {
  for (const [name, flags] of [['without', []], ['with --libp2p-metrics', ['--libp2p-metrics']]] as const) {
    const r = await measure([...flags])
    const prev = results[name]
    results[name] = { rss: [...(prev?.rss ?? []), ...r.rss], metricsBytes: r.metricsBytes }
    process.stderr.write(`round ${round} ${name}: RSS MiB ${r.rss.map(mib).join(' ')}\n`)
  }
}
for (const [name, r] of Object.entries(results)) {
  process.stdout.write(`${name.padEnd(22)} resting RSS median ${mib(median(r.rss))} MiB (min ${mib(Math.min(...r.rss))}, max ${mib(Math.max(...r.rss))}, ${r.rss.length} peers), /metrics ${(r.metricsBytes / 1024).toFixed(1)} KiB\n`)
}
