/**
 * Cost of one FaaSFlow benchmark workflow on a testnet, for A/B runs of two checkouts:
 * `WF=cycles MODES=dataflow,control N=10 npx tsx testnet/bench/micro/workflow-cost.ts`.
 * Runs the committed workflow (timeScale 0.05, sizeScale 0.01, postAt 1) on 4 peers x 4 slots, replicas 0, as
 * `dflow bench` does, modes alternated. Prints each request's latency, the median after 2 warm-ups per mode, the
 * CPU per request of the peers and of their instance processes (utime+stime from /proc), and the step timeline
 * of the last request of each mode, and where each kind of step's time went (testnet/bench/phases.ts).
 * PEERS and SLOTS change the testnet (4 x 4 by default); SUBMIT_TO=I submits every request to peer I (else round-robin). SIZE and POST_AT regenerate the workflow at another sizeScale or postAt. PEER_FLAGS passes more `dflow peer` flags (e.g. PEER_FLAGS='--inline-limit 1k'), DFLOW_PEER_NODE_ARGS more node flags.
 */
import { readFile, readdir } from 'node:fs/promises'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_FACTORS, benchmarkInputs, benchmarkWorkflows } from '../../../functions/benchmarks/index.ts'
import { generate } from '../../../functions/benchmarks/generate.ts'
import { loadWorkflow } from '../../../node/workflow/index.ts'
import { DflowClient } from '../../../node/client.ts'
import { credentialsFor } from '../../clients.ts'
import { startTarget } from '../target.ts'
import { runRequest } from '../request.ts'
import type { BenchMode } from '../types.ts'
import { PhaseBook, fetchRuns } from '../phases.ts'

const WF = process.env.WF ?? 'cycles'
const SLOTS = Number(process.env.SLOTS ?? 4)

interface StepTimes { peer: string | null, readyMs: number | null, startMs: number | null, endMs: number | null }
/**
 * Placement quality of one request, from its step timeline: `queued` sums start - ready over the steps (time a
 * step could have run but waited), `misplaced` the part of it during which another peer had a free slot
 * (its own peer's slots were all busy: it would have run sooner there). Structural, so it shows a placement change through CPU noise.
 */
export function queueWaits (steps: StepTimes[], slots = SLOTS): { queued: number, misplaced: number } {
  const runs = steps.filter(x => x.startMs !== null && x.endMs !== null)
  const peers = [...new Set(runs.map(x => x.peer))]
  let queued = 0
  let misplaced = 0
  for (const x of runs) {
    const ready = x.readyMs ?? x.startMs!
    if (x.startMs! <= ready) continue
    queued += x.startMs! - ready
    for (let t = ready; t < x.startMs!; t++) {
      const busy = (p: string | null): number => runs.filter(r => r.peer === p && r.startMs! <= t && t < r.endMs!).length
      if (busy(x.peer) >= slots && peers.some(p => p !== x.peer && busy(p) < slots)) misplaced++
    }
  }
  return { queued, misplaced }
}
const MODES = (process.env.MODES ?? 'dataflow,control').split(',') as BenchMode[]
const N = Number(process.env.N ?? 10)
const cpuOf = async (pid: number): Promise<number> => {
  try {
    const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  } catch { return 0 }
}
/** the instance processes of a peer: its children (setpriv execs node in place) */
const childrenOf = async (pid: number): Promise<number[]> => {
  const out: number[] = []
  for (const t of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const c = await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')
    out.push(...c.split(' ').filter(s => s.trim() !== '').map(Number))
  }
  return out
}
/** minor + major page faults of the whole machine so far (/proc/vmstat): fresh memory costs a fault per page */
const pageFaults = async (): Promise<number> => Number(/^pgfault (\d+)$/m.exec(await readFile('/proc/vmstat', 'utf8').catch(() => ''))?.[1] ?? 0)
const traffic = async (cs: DflowClient[]): Promise<Map<string, number>> => {
  const m = new Map<string, number>()
  for (const t of await Promise.all(cs.map(async c => await c.traffic()))) for (const [k, v] of Object.entries(t.protocols)) m.set(k, (m.get(k) ?? 0) + v.sent)
  return m
}
/** counters summed over peers: store stats and scheduler event counts */
const counters = async (cs: DflowClient[]): Promise<Map<string, number>> => {
  const m = new Map<string, number>()
  const add = (k: string, v: unknown): void => { if (typeof v === 'number') m.set(k, (m.get(k) ?? 0) + v) }
  for (const c of cs) {
    const st = await (await fetch(`${c.api}/v1/store/stats`)).json() as Record<string, unknown>
    for (const k of ['transfers', 'served', 'pushesSent', 'pushesReceived', 'sharedBlocks', 'directReads', 'pushesSkipped', 'verificationFailures']) add(k, st[k])
    const sc = await (await fetch(`${c.api}/v1/metrics/scheduler`)).json() as { events: Record<string, unknown> }
    for (const [k, v] of Object.entries(sc.events)) add(`events.${k}`, v)
  }
  return m
}
// SIZE=x generates the workflow at sizeScale x instead of the committed 0.01 (e.g. 0.0001: every value inline)
const regenerate = process.env.SIZE !== undefined || process.env.POST_AT !== undefined
const genDir = regenerate ? mkdtempSync(join(tmpdir(), 'dflow-wc-')) : undefined
if (genDir !== undefined) generate({ ...DEFAULT_FACTORS, sizeScale: Number(process.env.SIZE ?? DEFAULT_FACTORS.sizeScale), postAt: Number(process.env.POST_AT ?? DEFAULT_FACTORS.postAt) }, genDir)
const job = { path: genDir !== undefined ? join(genDir, WF, 'workflow.yaml') : benchmarkWorkflows.find(b => b.name === WF)!.path }
const target = await startTarget({ peers: Number(process.env.PEERS ?? 4), slots: SLOTS, replicas: 0, extraFlags: (process.env.PEER_FLAGS ?? '').split(' ').filter(x => x !== ''), ...(process.env.KEEP !== undefined ? { dir: process.env.KEEP } : {}) })
try {
  const clients = target.peers.map(p => new DflowClient(p.api, { ...credentialsFor(p.api), timeoutMs: 60_000 }))
  const loaded = await loadWorkflow(job.path)
  const bytes = loaded.bytes
  const cid = (await Promise.all(clients.map(async c => c.addWorkflow(bytes))))[0]
  const manifest = JSON.parse(await readFile(`${target.dir}/manifest.json`, 'utf8')) as { peers: Array<{ pid: number }> }
  const pids = manifest.peers.map(p => p.pid)
  const times = new Map<BenchMode, number[]>(MODES.map(m => [m, []]))
  const cpu = new Map<BenchMode, { peer: number, inst: number, n: number }>(MODES.map(m => [m, { peer: 0, inst: 0, n: 0 }]))
  const kc = new Map<BenchMode, Map<string, number>>(MODES.map(m => [m, new Map()]))
  const waits = new Map<BenchMode, Array<{ queued: number, misplaced: number }>>(MODES.map(m => [m, []]))
  const tr = new Map<BenchMode, Map<string, number>>(MODES.map(m => [m, new Map()]))
  const phases = new Map<BenchMode, PhaseBook>(MODES.map(m => [m, new PhaseBook(loaded.workflow)]))
  let measuredFrom = 0
  let faultsFrom = 0
  let perf: ChildProcess | undefined
  for (let i = 0; i < N; i++) {
    if (i === 2) {
      measuredFrom = performance.now()
      faultsFrom = await pageFaults()
      // PERF=FILE: a system-wide perf record of the measured requests
      if (process.env.PERF !== undefined) { perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '999', '-a', '-g', '-o', process.env.PERF], { stdio: 'ignore' }); await new Promise(resolve => setTimeout(resolve, 500)) }
    }
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(i + k) % MODES.length]
      const kids = (await Promise.all(pids.map(childrenOf))).flat()
      const p0 = (await Promise.all(pids.map(cpuOf))).reduce((a, b) => a + b, 0)
      const c0 = (await Promise.all(kids.map(cpuOf))).reduce((a, b) => a + b, 0)
      const t0 = await traffic(clients)
      const k0 = await counters(clients)
      const s = await runRequest(clients[process.env.SUBMIT_TO !== undefined ? Number(process.env.SUBMIT_TO) : (i * MODES.length + k) % clients.length], { workflow: WF, postAt: 1, cid, mode, inputs: benchmarkInputs(`wc-${i}-${k}-${Date.now()}`), peer: 0, requestId: `wc-${Date.now()}-${i}-${k}` }, 60_000)
      const p1 = (await Promise.all(pids.map(cpuOf))).reduce((a, b) => a + b, 0)
      const c1 = (await Promise.all(kids.map(cpuOf))).reduce((a, b) => a + b, 0)
      const t1 = await traffic(clients)
      const k1 = await counters(clients)
      if (i >= 2) { const km = kc.get(mode)!; for (const [k, v] of k1) km.set(k, (km.get(k) ?? 0) + v - (k0.get(k) ?? 0)) }
      if (i >= 2) { const tm = tr.get(mode)!; for (const [k, v] of t1) tm.set(k, (tm.get(k) ?? 0) + v - (t0.get(k) ?? 0)) }
      if (s.status !== 'ok') throw new Error(`request ${s.requestId} ${s.status}: ${s.error}`)
      times.get(mode)!.push(Math.round(s.latencyMs))
      if (i >= 2) waits.get(mode)!.push(queueWaits(s.steps))
      if (i >= 2) { const c = cpu.get(mode)!; c.peer += p1 - p0; c.inst += c1 - c0; c.n++ }
      if (i >= 2) phases.get(mode)!.add(await fetchRuns(clients.map(c => c.api), s.requestId))
      if (i === N - 1 && process.env.TIMELINE !== '0') {
        const peers = [...new Set(s.steps.map(x => x.peer))]
        console.log(`timeline ${mode} (total ${Math.round(s.latencyMs)} server ${s.serverMs}): name peer ready start end`)
        for (const x of [...s.steps].sort((a, b) => (a.startMs ?? 0) - (b.startMs ?? 0))) console.log(`  ${x.name.padEnd(52)} p${peers.indexOf(x.peer)} ${x.readyMs} ${x.startMs} ${x.endMs}${(x.coldStartMs ?? 0) > 0 ? ` cold ${x.coldStartMs}` : ''}`)
        const runs = (await Promise.all(clients.map(async c => await (await fetch(`${c.api}/v1/requests/${encodeURIComponent(s.requestId)}/runs`)).json() as { runs: Array<{ step: string, peer: string, outcome: string, firedAt: number }> }))).flatMap(r => r.runs)
        const odd = runs.filter(r => r.outcome !== 'done')
        console.log(`  runs ${runs.length}, not done: ${odd.map(r => `${r.step}@p${peers.indexOf(r.peer)} ${r.outcome} fired +${r.firedAt - s.submittedAt}`).join('; ') || 'none'}`)
      }
    }
  }
  for (const m of MODES) {
    const t = times.get(m)!
    const steady = t.slice(2).sort((a, b) => a - b)
    const c = cpu.get(m)!
    console.log(`${WF} ${m} KiB sent per request by protocol: ${[...tr.get(m)!].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${(v / c.n / 1024).toFixed(0)}`).join(', ')}`)
    console.log(`${WF} ${m} counters per request: ${[...kc.get(m)!].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${(v / c.n).toFixed(1)}`).join(', ')}`)
    const w = waits.get(m)!
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
    console.log(`${WF} ${m} where a step's time goes (run phases of every peer):\n  ${phases.get(m)!.table().join('\n  ')}`)
    console.log(`${WF} ${m} step waits per request (ms, median): queued ${med(w.map(x => x.queued))}, behind full slots while another peer had one free ${med(w.map(x => x.misplaced))}`)
    console.log(`${WF} ${m}: ${t.join(' ')} | p50 after 2: ${steady[Math.floor(steady.length / 2)]} ms (lower median ${steady[Math.floor((steady.length - 1) / 2)]}); CPU/request peers ${(c.peer / c.n).toFixed(0)} ms, instances ${(c.inst / c.n).toFixed(0)} ms`)
  }
  if (perf !== undefined) { perf.kill('SIGINT'); await new Promise(resolve => perf!.once('exit', resolve)) }
  console.log(`measured window ${(performance.now() - measuredFrom).toFixed(0)} ms, page faults (whole machine) per request ${((await pageFaults() - faultsFrom) / Math.max(1, (N - 2) * MODES.length)).toFixed(0)}`)
} finally {
  const t = performance.now()
  await target.stop()
  console.log(`stop took ${(performance.now() - t).toFixed(0)} ms`)
}
