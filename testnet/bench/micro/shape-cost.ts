/**
 * Cost of one shape on a testnet, for A/B runs of two checkouts: `SHAPE=fan|chain N=14 PEERS=4 npx tsx testnet/bench/micro/shape-cost.ts`
 * (FLAGS="--isolation thread" passes peer flags). Prints each request's totalMs, the median after 2 warm-ups, the
 * peers' CPU (utime+stime from /proc, instance processes not included), the whole machine's busy CPU (/proc/stat:
 * peers, instances, this client) and write syscalls (/proc/PID/io syscw) per request, and a step timeline of the last two.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSelfContained } from '../../../functions/benchmarks/generate.ts'
import { loadWorkflow } from '../../../node/workflow/index.ts'
import { startTestnet } from '../../index.ts'
import { chainPlan, fanPlan } from './shapes.ts'

const SHAPE = process.env.SHAPE ?? 'fan'
const N = Number(process.env.N ?? 14)
const PEERS = Number(process.env.PEERS ?? 4)
const FLAGS = (process.env.FLAGS ?? '').split(' ').filter(f => f !== '')
/** busy and total CPU ms of the whole machine so far (all cores) */
const machine = async (): Promise<{ busy: number, total: number }> => {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = f.reduce((a, b) => a + b, 0) * 10
  return { busy: total - (f[3] + f[4]) * 10, total }
}
const cpu = async (pid: number): Promise<number> => {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}
const stime = async (pid: number): Promise<number> => Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ')[12]) * 10
const metrics = async (api: string): Promise<any> => await (await fetch(`${api}/v1/metrics/scheduler`)).json()
const eventTotals = async (ports: string[]): Promise<{ published: number, received: number, synced: number, messages: number, skipped: number }> => {
  const ms = await Promise.all(ports.map(metrics))
  const sum = (f: (m: any) => number): number => ms.reduce((a, m) => a + (Number(f(m)) || 0), 0)
  return { published: sum(m => m.events.published), received: sum(m => m.events.received), synced: sum(m => m.events.synced), messages: sum(m => m.events.messages), skipped: sum(m => m.events.forwardsSkipped) }
}
const gossipBytes = async (apis: string[]): Promise<number> => {
  const ts = await Promise.all(apis.map(async a => await (await fetch(`${a}/v1/metrics/traffic`)).json() as { protocols: Record<string, { sent: number }> }))
  return ts.reduce((sum, t) => sum + Object.entries(t.protocols).filter(([p]) => p.startsWith('/meshsub')).reduce((x, [, v]) => x + v.sent, 0), 0)
}
const syscw = async (pid: number): Promise<number> => Number(/syscw: (\d+)/.exec(await readFile(`/proc/${pid}/io`, 'utf8'))![1])
const dir = await mkdtemp(join(tmpdir(), 'dflow-scratch-'))
const plan = SHAPE === 'fan' ? fanPlan() : chainPlan()
const file = writeSelfContained(plan, { timeScale: 1, sizeScale: 1, initMs: 0, postAt: 1 }, join(dir, 'wf')).yaml
const net = await startTestnet({ peers: PEERS, dir: join(dir, 'testnet'), flags: FLAGS })
try {
  const clients = await net.clients()
  const bytes = (await loadWorkflow(file)).bytes
  const cid = (await Promise.all(clients.map(async c => c.addWorkflow(bytes))))[0]
  const pids = net.manifest.peers.map(p => p.pid)
  const times: number[] = []
  let cpu0 = 0
  let per0: number[] = []
  let sys0 = 0
  let w0 = 0
  let ev0 = { published: 0, received: 0, synced: 0, messages: 0, skipped: 0 }
  let gb0 = 0
  let m0 = { busy: 0, total: 0 }
  const ports = net.manifest.peers.map(p => p.api)
  for (let i = 0; i < N; i++) {
    if (i === 2) { per0 = await Promise.all(pids.map(cpu)); cpu0 = per0.reduce((a, b) => a + b, 0); sys0 = (await Promise.all(pids.map(stime))).reduce((a, b) => a + b, 0); w0 = (await Promise.all(pids.map(syscw))).reduce((a, b) => a + b, 0); ev0 = await eventTotals(ports); gb0 = await gossipBytes(ports); m0 = await machine() }
    const c = process.env.CLIENT !== undefined ? clients[Number(process.env.CLIENT)] : clients[i % clients.length]
    const view = await c.wait(await c.submit({ workflow: cid, inputs: { seed: `t-${i}-${Date.now()}` } }), { pollMs: 10 })
    if (view.status !== 'ok') throw new Error(`request ${view.requestId} ended ${view.status}`)
    times.push(view.totalMs ?? -1)
    if (i === N - 1 || i === N - 2) {
      const st = view.steps
      const f = (xs: Array<number | null>) => xs.filter((x): x is number => x !== null)
      const src = st.find(s => s.name === 'source' || s.name === 's00')!
      const mids = st.filter(s => s.name !== 'source' && s.name !== 'join')
      const join = st.find(s => s.name === 'join' || s.name === 's49')!
      const by = new Map<string, number>(); for (const s of mids) by.set(s.peer ?? '?', (by.get(s.peer ?? '?') ?? 0) + 1)
      console.log(`timeline: source ${src.startMs}-${src.endMs}; mids start ${Math.min(...f(mids.map(s => s.startMs)))}..${Math.max(...f(mids.map(s => s.startMs)))} end max ${Math.max(...f(mids.map(s => s.endMs)))}; ready->start gaps p50 ${(() => { const g = mids.map(s => (s.startMs ?? 0) - (s.readyMs ?? 0)).sort((a, b) => a - b); return g[g.length >> 1] })()}; join ready ${join.readyMs} start ${join.startMs} end ${join.endMs}; total ${view.totalMs}; per peer ${[...by.values()].join('/')}`)
      const gaps: number[] = []
      for (const peer of by.keys()) {
        const mine = mids.filter(s => s.peer === peer)
        const ends = f(mine.map(s => s.endMs)).sort((a, b) => a - b)
        for (const s of mine) {
          const before = ends.filter(e => e <= (s.startMs ?? 0))
          if (before.length > 0) gaps.push((s.startMs ?? 0) - before[before.length - 1])
        }
      }
      gaps.sort((a, b) => a - b)
      console.log(`slot turnaround (start - latest earlier end on the peer): n ${gaps.length} p50 ${gaps[gaps.length >> 1]} p90 ${gaps[Math.floor(gaps.length * 0.9)]}`)
      const ds = mids.map(s => (s.endMs ?? 0) - (s.startMs ?? 0)).sort((a, b) => a - b)
      console.log(`mid durations p50 ${ds[ds.length >> 1]} max ${ds[ds.length - 1]}`)
    }
  }
  const m1 = await machine()
  const per1 = await Promise.all(pids.map(cpu))
  console.log(`machine busy per request (peers, instances, client): ${((m1.busy - m0.busy) / (N - 2)).toFixed(0)} ms of ${((m1.total - m0.total) / (N - 2)).toFixed(0)} (${(100 * (m1.busy - m0.busy) / (m1.total - m0.total)).toFixed(0)}%)`)
  const cpu1 = per1.reduce((a, b) => a + b, 0)
  console.log(`peer CPU per request, each peer: ${per1.map((c, i) => ((c - per0[i]) / (N - 2)).toFixed(0)).join(' / ')} ms`)
  const sys1 = (await Promise.all(pids.map(stime))).reduce((a, b) => a + b, 0)
  const w1 = (await Promise.all(pids.map(syscw))).reduce((a, b) => a + b, 0)
  const ev1 = await eventTotals(ports)
  console.log(`gossip bytes sent per request (all peers): ${(((await gossipBytes(ports)) - gb0) / (N - 2) / 1024).toFixed(1)} KiB`)
  console.log(`pools: ${JSON.stringify(await Promise.all(ports.map(async p => { const m = await metrics(p); return { i: m.pool.instances, cold: m.pool.coldStarts, warm: m.pool.warmStarts } })))}`)
  const per = (k: 'published' | 'received' | 'synced' | 'messages' | 'skipped'): string => ((ev1[k] - ev0[k]) / (N - 2)).toFixed(0)
  console.log(`events per request (all peers): published ${per('published')} received ${per('received')} synced ${per('synced')}; gossip messages published ${per('messages')}, forwards left out ${per('skipped')}`)
  const steady = times.slice(2).sort((a, b) => a - b)
  console.log(`${SHAPE} times: ${times.join(' ')}`)
  console.log(`${SHAPE} median after 2: ${steady[Math.floor(steady.length / 2)]} ms; peer CPU per request ${((cpu1 - cpu0) / (N - 2)).toFixed(0)} ms (kernel ${((sys1 - sys0) / (N - 2)).toFixed(0)}); write syscalls per request ${((w1 - w0) / (N - 2)).toFixed(0)}`)
} finally {
  await net.stop()
  await rm(dir, { recursive: true, force: true })
}
