/**
 * `npm run bench:scale -- --peers 4,8,16,32`: testnets of growing size. Per size: formation time (wall time
 * of `dflow testnet up`), idle CPU per peer (utime+stime from /proc over a window starting a while after up
 * returned), idle bytes sent per peer per second, RSS per peer, gossip events per request and p50 of a small
 * workflow; on the largest size (or --fan-peers) a fan of --fan instances, checked. Writes a table to stdout
 * and scale.md, scale.json and scale.svg to --out. A benchmark, not a test.
 */
import '../node/util/polyfill.ts'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { describeMachine } from './bench/machine.ts'
import { parseDuration } from '../node/config.ts'
import { measureSize } from './scale/measure.ts'
import { formatMarkdown, formatText, scaleChart } from './scale/report.ts'
import type { ScaleResults } from './scale/types.ts'

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '4,8,16,32' },
    'idle-wait': { type: 'string', default: '10s' },
    'idle-window': { type: 'string', default: '20s' },
    requests: { type: 'string', default: '10' },
    fan: { type: 'string', default: '100' },
    'fan-peers': { type: 'string' },
    timeout: { type: 'string', default: '120s' },
    out: { type: 'string', default: 'docs/benchmarks' },
    note: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
    /** keep the testnets' directories (peer logs, e.g. with DEBUG=dflow:membership) */
    keep: { type: 'boolean', default: false }
  }
})

function fail (message: string): never {
  process.stderr.write(`error: ${message}\n`)
  process.exit(2)
}

const sizes = (values.peers ?? '').split(',').map(s => Number(s.trim()))
if (sizes.length === 0 || sizes.some(n => !Number.isInteger(n) || n < 1)) fail(`--peers: expected a comma list of positive integers, got ${JSON.stringify(values.peers)}`)
const int = (flag: string, v: string | undefined, min: number): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) fail(`--${flag}: expected an integer >= ${min}, got ${JSON.stringify(v)}`)
  return n
}
const requests = int('requests', values.requests, 1)
const fan = int('fan', values.fan, 0)
const fanPeers = values['fan-peers'] === undefined ? Math.max(...sizes) : int('fan-peers', values['fan-peers'], 1)
let idleWaitMs = 0
let idleWindowMs = 0
let upTimeoutMs = 0
try {
  idleWaitMs = parseDuration(values['idle-wait'], '--idle-wait')
  idleWindowMs = parseDuration(values['idle-window'], '--idle-window')
  upTimeoutMs = parseDuration(values.timeout, '--timeout')
} catch (err) { fail((err as Error).message) }
if (idleWindowMs < 1000) fail('--idle-window: at least 1s')

const log = (line: string): void => { process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`) }
const results: ScaleResults = { ...describeMachine(), idleWaitMs, idleWindowMs, rows: [] }
const base = await mkdtemp(join(tmpdir(), 'dflow-scale-'))
try {
  for (const peers of sizes) {
    results.rows.push(await measureSize({ peers, dir: join(base, `n${peers}`), idleWaitMs, idleWindowMs, requests, fan: peers === fanPeers ? fan : 0, upTimeoutMs, log }))
  }
} finally {
  if (values.keep === true) log(`kept ${base}`)
  else await rm(base, { recursive: true, force: true })
}

const out = resolve(values.out ?? 'docs/benchmarks')
await mkdir(out, { recursive: true })
await writeFile(join(out, 'scale.json'), JSON.stringify(results, null, 2) + '\n')
await writeFile(join(out, 'scale.md'), formatMarkdown(results, values.note ?? []))
try {
  await writeFile(join(out, 'scale.svg'), await scaleChart(results))
} catch (err) {
  log(`no chart: ${(err as Error).message}`)
}
process.stdout.write(values.json === true ? JSON.stringify(results) + '\n' : formatText(results.rows) + '\n')
log(`wrote ${join(out, 'scale.md')}, scale.json, scale.svg`)
