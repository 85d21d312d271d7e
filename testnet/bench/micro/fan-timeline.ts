/**
 * Where a fan-100x20ms request's time goes on a 4-peer testnet: per request, when the source ran, and per peer how
 * many items it ran, when they became ready, started and ended, and when the join was ready; then the run phases of
 * each kind of step over the requests (testnet/bench/phases.ts). A diagnostic, not a
 * benchmark: `npx tsx testnet/bench/micro/fan-timeline.ts` (N requests, default 10, the first 2 not printed; KEEP=1 keeps
 * the testnet directory with the peers' logs).
 */
import '../../../node/util/polyfill.ts'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSelfContained } from '../../../functions/benchmarks/generate.ts'
import { loadWorkflow } from '../../../node/workflow/index.ts'
import type { RequestView } from '../../../node/dscheduler/types.ts'
import { startTestnet } from '../../index.ts'
import { fanPlan } from './shapes.ts'
import { PhaseBook, fetchRuns } from '../phases.ts'

type StepView = RequestView['steps'][number]

function line (v: RequestView): string {
  const short = (peer: string | null | undefined): string => (peer ?? '?').slice(-4)
  const byPeer = new Map<string, StepView[]>()
  for (const s of v.steps) if (s.name.startsWith('f')) byPeer.set(short(s.peer), [...(byPeer.get(short(s.peer)) ?? []), s])
  const src = v.steps.find(s => s.name === 'source')
  const join = v.steps.find(s => s.name === 'join')
  const span = (xs: Array<number | null>): string => { const ys = xs.filter((x): x is number => x !== null); return `${Math.min(...ys)}..${Math.max(...ys)}` }
  const peers = [...byPeer].map(([p, items]) =>
    `${p}: ${items.length} ready ${span(items.map(s => s.readyMs))} start ${span(items.map(s => s.startMs))} end ${Math.max(...items.map(s => s.endMs ?? 0))}`)
  return `total ${v.totalMs} source ${src?.readyMs}/${src?.startMs}/${src?.endMs} (${short(src?.peer)}) join ${join?.readyMs}/${join?.startMs}/${join?.endMs} (${short(join?.peer)}) | ${peers.join(' | ')}`
}

const dir = await mkdtemp(join(tmpdir(), 'dflow-fan-timeline-'))
const testnet = await startTestnet({ peers: 4, dir: join(dir, 'testnet') })
try {
  const file = writeSelfContained(fanPlan(), { timeScale: 1, sizeScale: 1, initMs: 0, postAt: 1 }, join(dir, 'wf')).yaml
  const clients = await testnet.clients()
  const loaded = await loadWorkflow(file)
  const cid = (await Promise.all(clients.map(async c => c.addWorkflow(loaded.bytes))))[0]
  const book = new PhaseBook(loaded.workflow)
  const n = Number(process.env.N ?? 10)
  for (let i = 0; i < n; i++) {
    const c = clients[i % clients.length]
    const v = await c.wait(await c.submit({ workflow: cid, inputs: { seed: `t-${i}-${Date.now()}` } }), { pollMs: 10 })
    if (i >= 2) console.log(line(v))
    if (i >= 2) book.add(await fetchRuns(clients.map(x => x.api), v.requestId))
  }
  console.log(`where a step's time goes (run phases of every peer):\n  ${book.table().join('\n  ')}`)
} finally {
  await testnet.stop()
  if (process.env.KEEP === undefined) await rm(dir, { recursive: true, force: true }); else console.log('kept', dir)
}
