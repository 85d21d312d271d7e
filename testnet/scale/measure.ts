/** Measures one testnet size for `npm run bench:scale` (see testnet/bench-scale.ts). */
import { spawn } from 'node:child_process'
import { loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DflowClient } from '../../node/client.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { DFLOW_BIN } from '../launcher.ts'
import { openTestnet, type Testnet } from '../index.ts'
import { percentile } from '../bench/stats.ts'
import { cpuMs, rssBytes, wakeups } from './proc.ts'
import type { ScaleRow } from './types.ts'

const here = dirname(fileURLToPath(import.meta.url))
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const MiB = 1024 * 1024
/** how long failure detection is watched before it counts as not detected */
const DETECT_CAP_MS = 30_000

export interface MeasureOptions {
  peers: number
  dir: string
  idleWaitMs: number
  idleWindowMs: number
  /** small-workflow requests (after one warm-up) */
  requests: number
  /** fan instances; 0 = no fan run at this size */
  fan: number
  upTimeoutMs: number
  log: (line: string) => void
}

/** `dflow testnet up` as a user runs it: its wall time is the formation time. */
async function up (peers: number, dir: string, timeoutMs: number): Promise<{ ms: number, error?: string }> {
  const t0 = performance.now()
  return new Promise(resolve => {
    const child = spawn(process.execPath, [DFLOW_BIN, 'testnet', 'up', '--peers', String(peers), '--dir', dir, '--timeout', `${timeoutMs}ms`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.stdout.resume()
    child.on('close', code => {
      const ms = performance.now() - t0
      resolve(code === 0 ? { ms } : { ms, error: err.trim().split('\n').filter(l => !/^(started|forming)/.test(l)).slice(0, 8).join('\n') || `exit code ${code}` })
    })
  })
}

const stats = (xs: number[]): { mean: number, max: number } => ({ mean: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), max: Math.max(...xs) })

async function traffic (clients: DflowClient[]): Promise<Array<Awaited<ReturnType<DflowClient['traffic']>>>> {
  return Promise.all(clients.map(async c => c.traffic()))
}

async function eventCounters (testnet: Testnet): Promise<{ published: number, received: number }> {
  const all = await Promise.all(testnet.manifest.peers.map(async p => {
    const res = await fetch(`${p.api}/v1/metrics/scheduler`, { signal: AbortSignal.timeout(5000) })
    return (await res.json() as { events: { published: number, received: number } }).events
  }))
  return { published: all.reduce((a, e) => a + e.published, 0), received: all.reduce((a, e) => a + e.received, 0) }
}

interface PaceView { busy?: boolean, health?: number, stretch?: number }

async function paces (testnet: Testnet): Promise<PaceView[]> {
  return await Promise.all(testnet.manifest.peers.filter(p => p.pid > 0).map(async p => {
    try {
      const res = await fetch(`${p.api}/v1/membership`, { signal: AbortSignal.timeout(5000) })
      return await res.json() as PaceView
    } catch { return {} }
  }))
}

/** How many peers' membership probes at its busy pace (news to spread, a suspect, a stranger) rather than at rest. */
async function busyPeers (testnet: Testnet): Promise<number> {
  return (await paces(testnet)).filter(v => v.busy === true).length
}

/** The largest local health and stretch of the peers' memberships (each stretches its timeouts and watch by it). */
async function stretches (testnet: Testnet): Promise<string> {
  const views = await paces(testnet)
  return `max health ${Math.max(0, ...views.map(v => v.health ?? 0))}, max stretch ${Math.max(0, ...views.map(v => v.stretch ?? 0))}, busy ${views.filter(v => v.busy === true).length}`
}

/** Idle CPU, traffic and RSS of every peer: wait idleWaitMs after up, then a window of idleWindowMs. */
async function idle (testnet: Testnet, clients: DflowClient[], o: MeasureOptions): Promise<Pick<ScaleRow, 'idleCpuPct' | 'idleWakeupsPerSec' | 'idleBusyPeers' | 'idleBytesPerSec' | 'idleByProtocol' | 'rssMiB' | 'loadAvg'>> {
  await sleep(o.idleWaitMs)
  const busy0 = await busyPeers(testnet)
  const pids = testnet.manifest.peers.map(p => p.pid)
  const rss = pids.map(rssBytes)
  const cpu0 = pids.map(cpuMs)
  const wake0 = pids.map(wakeups)
  const t0 = performance.now()
  const tr0 = await traffic(clients)
  await sleep(o.idleWindowMs)
  const cpu1 = pids.map(cpuMs)
  const wake1 = pids.map(wakeups)
  const tr1 = await traffic(clients)
  const busy1 = await busyPeers(testnet)
  const secs = (performance.now() - t0) / 1000
  const byProtocol: Record<string, number> = {}
  for (let i = 0; i < clients.length; i++) {
    for (const [proto, v] of Object.entries(tr1[i].protocols)) {
      const before = tr0[i].protocols[proto]?.sent ?? 0
      byProtocol[proto] = (byProtocol[proto] ?? 0) + (v.sent - before) / secs / clients.length
    }
  }
  for (const k of Object.keys(byProtocol)) if (byProtocol[k] < 0.5) delete byProtocol[k]
  return {
    idleCpuPct: stats(cpu1.map((c, i) => (c - cpu0[i]) / (secs * 1000) * 100)),
    idleBusyPeers: { start: busy0, end: busy1 },
    idleWakeupsPerSec: stats(wake1.map((w, i) => (w - wake0[i]) / secs)),
    idleBytesPerSec: stats(tr1.map((t, i) => (t.total.sent - tr0[i].total.sent) / secs)),
    idleByProtocol: Object.fromEntries(Object.entries(byProtocol).map(([k, v]) => [k, Math.round(v)])),
    rssMiB: stats(rss.map(b => b / MiB)),
    loadAvg: loadavg()[0]
  }
}

async function small (testnet: Testnet, clients: DflowClient[], o: MeasureOptions): Promise<Pick<ScaleRow, 'eventsPerRequest' | 'smallP50Ms'>> {
  const wf = await loadWorkflow(join(here, 'small.yaml'))
  await Promise.all(clients.map(async c => c.addWorkflow(wf.bytes)))
  const run = async (i: number): Promise<number> => {
    const c = clients[i % clients.length]
    const t0 = performance.now()
    const view = await c.wait(await c.submit({ workflow: wf.cid, inputs: { n: 4 } }), { pollMs: 10 })
    if (view.status !== 'ok' || view.outputs.total !== 14) throw new Error(`small workflow: status ${view.status}, total ${JSON.stringify(view.outputs.total)} (expected 14) ${view.error ?? ''}`)
    return performance.now() - t0
  }
  await run(0) // warm-up: modules bundled and loaded
  await sleep(1000)
  const before = await eventCounters(testnet)
  const ms: number[] = []
  for (let i = 1; i <= o.requests; i++) ms.push(await run(i))
  await sleep(1000) // the last request-done reaches everyone
  const after = await eventCounters(testnet)
  return {
    smallP50Ms: percentile([...ms].sort((a, b) => a - b), 50),
    eventsPerRequest: { published: (after.published - before.published) / o.requests, received: (after.received - before.received) / o.requests }
  }
}

async function fanRun (clients: DflowClient[], n: number): Promise<NonNullable<ScaleRow['fan']>> {
  const wf = await loadWorkflow(join(here, 'fan.yaml'))
  await Promise.all(clients.map(async c => c.addWorkflow(wf.bytes)))
  const expected = (n - 1) * n * (2 * n - 1) / 6
  const t0 = performance.now()
  try {
    const view = await clients[0].wait(await clients[0].submit({ workflow: wf.cid, inputs: { n } }), { pollMs: 50 })
    const ms = performance.now() - t0
    const sq = view.steps.filter(s => s.name === 'sq')
    const ok = view.status === 'ok' && view.outputs.total === expected && sq.length === n && sq.every(s => s.status === 'ok')
    return { steps: sq.length, ms, ok, peersUsed: new Set(sq.map(s => s.peer)).size, error: ok ? undefined : `status ${view.status}, total ${JSON.stringify(view.outputs.total)} (expected ${expected}) ${view.error ?? ''}` }
  } catch (err) {
    return { steps: 0, ms: performance.now() - t0, ok: false, peersUsed: 0, error: (err as Error).message }
  }
}

/** how often detection is looked at: the peers' views say when they took the victim for dead (`since`) */
const DETECT_POLL_MS = 1000

/**
 * Freezes (SIGSTOP) or kills (SIGKILL) a peer; ms until every other peer's membership says it is dead. The time is
 * each peer's own `since` of the verdict (same machine, same clock), so the peers are asked once a second: asking
 * all of them every 100 ms (310 HTTP requests a second at 32 peers) loaded the machine it measured.
 */
async function detect (testnet: Testnet, victim: number, how: 'SIGSTOP' | 'SIGKILL'): Promise<number | null> {
  const peers = testnet.manifest.peers
  const target = peers[victim]
  const others = peers.filter(p => p !== target && p.pid > 0)
  const deadAt = new Map<number, number>()
  const t0 = Date.now()
  process.kill(target.pid, how)
  try {
    while (deadAt.size < others.length && Date.now() - t0 < DETECT_CAP_MS) {
      await sleep(DETECT_POLL_MS)
      await Promise.all(others.filter(p => !deadAt.has(p.index)).map(async p => {
        try {
          const res = await fetch(`${p.api}/v1/membership`, { signal: AbortSignal.timeout(5000) })
          const view = await res.json() as { members: Array<{ peerId: string, state: string, since?: number }> }
          const m = view.members.find(m => m.peerId === target.peerId)
          // a peer without `since` (an older build) counts when it is seen
          if (m?.state === 'dead') deadAt.set(p.index, m.since ?? Date.now())
        } catch {}
      }))
    }
    return deadAt.size === others.length ? Math.max(...deadAt.values()) - t0 : null
  } finally {
    if (how === 'SIGSTOP') process.kill(target.pid, 'SIGCONT')
  }
}

/** One size: up (timed), idle window, small workflow, fan; always takes the testnet down. */
export async function measureSize (o: MeasureOptions): Promise<ScaleRow> {
  const row: ScaleRow = { peers: o.peers, formationMs: null, idleCpuPct: null, idleBytesPerSec: null, idleByProtocol: {}, rssMiB: null, eventsPerRequest: null, smallP50Ms: null, smallRequests: o.requests, loadAvg: loadavg()[0] }
  o.log(`${o.peers} peers: dflow testnet up`)
  const formed = await up(o.peers, o.dir, o.upTimeoutMs)
  let testnet: Testnet | undefined
  try {
    testnet = await openTestnet(o.dir)
    if (formed.error !== undefined) {
      row.formationError = formed.error
      o.log(`${o.peers} peers: did not form in ${(formed.ms / 1000).toFixed(1)} s: ${formed.error}`)
      return row
    }
    row.formationMs = formed.ms
    o.log(`${o.peers} peers: formed in ${(formed.ms / 1000).toFixed(1)} s; idle ${o.idleWaitMs / 1000} s, then measuring ${o.idleWindowMs / 1000} s`)
    // generous: on a busy machine a 32-peer testnet answers slowly, and a timeout here would be the tool's failure
    const clients = await testnet.clients({ timeoutMs: 120_000 })
    Object.assign(row, await idle(testnet, clients, o))
    o.log(`${o.peers} peers: idle cpu ${row.idleCpuPct?.mean.toFixed(2)}% per peer, ${row.idleWakeupsPerSec?.mean.toFixed(1)} wake-ups/s, membership busy on ${row.idleBusyPeers?.start} -> ${row.idleBusyPeers?.end} peers, ${row.idleBytesPerSec?.mean.toFixed(0)} B/s, rss ${row.rssMiB?.mean.toFixed(0)} MiB; small workflow x${o.requests}`)
    Object.assign(row, await small(testnet, clients, o))
    if (o.fan > 0) {
      o.log(`${o.peers} peers: fan of ${o.fan}`)
      row.fan = await fanRun(clients, o.fan)
    }
    if (o.peers >= 3) {
      // detection of a failure in a settled network, as the idle figures: right after the fan, 32 peers on 2 cores
      // are still finishing it (load 15-50), and every peer's probe timeouts are stretched by its slow round trips
      await sleep(o.idleWaitMs)
      o.log(`${o.peers} peers: before the failures, membership ${await stretches(testnet)}`)
      const stopped = await detect(testnet, o.peers - 1, 'SIGSTOP')
      const killed = await detect(testnet, o.peers - 2, 'SIGKILL')
      row.detectMs = { stopped, killed }
      o.log(`${o.peers} peers: failure detected in ${stopped?.toFixed(0) ?? `>${DETECT_CAP_MS}`} ms (frozen), ${killed?.toFixed(0) ?? `>${DETECT_CAP_MS}`} ms (killed)`)
    }
    return row
  } finally {
    await testnet?.stop().catch(err => { o.log(`stopping the testnet in ${o.dir}: ${(err as Error).message}`) })
  }
}
