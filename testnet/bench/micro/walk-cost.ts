/**
 * CPU of one placement walk, in-process (no network): a foreach of N items (N=100 by default) that one peer places on
 * 4 peers of 4 slots, on a fresh scheduler 30 times; prints the median. `N=400 npx tsx testnet/bench/micro/walk-cost.ts`.
 */
import { defaultLogger } from '@libp2p/logger'
import { parseWorkflow } from '../../../node/workflow/index.ts'
import { LocalBus } from '../../../node/dscheduler/bus.ts'
import { DScheduler } from '../../../node/dscheduler/scheduler.ts'
import { RequestState } from '../../../node/dscheduler/request-state.ts'
import { newTracked } from '../../../node/dscheduler/tracked.ts'
import { winnerOf } from '../../../node/dscheduler/claims.ts'
const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const OUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
const wf = parseWorkflow(`name: fan
inputs: [x]
outputs: { z: j.z }
steps:
  a: { run: ./m.js#a, in: { x: inputs.x }, out: [y] }
  m: { run: ./m.js#m, foreach: a.y, in: { v: $item }, out: [w] }
  j: { run: ./m.js#j, in: { ws: m.w }, out: [z] }
`, 'fan.yaml')
const N = Number(process.env.N ?? 100)
const peers = ['P1', 'P2', 'P3', 'P4']
const times: number[] = []
for (let round = 0; round < 30; round++) {
  const membership = { live: () => peers, isLive: (p: string) => peers.includes(p), incarnation: 1, incarnationOf: () => 1, lastHeard: () => Date.now() }
  const sched = new DScheduler({ self: 'P1', bus: new LocalBus(), store: {} as never, pool: {} as never, loader: {} as never, membership, logger: defaultLogger() }, { slots: 4 })
  sched.dispatcher.examine = (_t, st, rec) => { rec.winner = winnerOf(rec.gid, rec, sched.claimRules); sched.load.set(rec.gid, rec.winner?.peer, { rec, s: st }) }
  sched.c.bus.publish = async () => {}
  const started = { type: 'request-started' as const, from: 'P1', ts: 1, request: 'r', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: ['P1'], inline: new Uint8Array([1]) } }, mode: 'dataflow' as const, store: 'distributed' as const, submitter: 'P1' }
  const s = new RequestState(wf, started)
  const t = newTracked(); t.state = s
  Object.keys(wf.steps).forEach((n, i) => t.order.set(n, i))
  sched.history.recordRun(CID, 'm', 20)
  s.instance('a', null).winner = { peer: 'P1', attempt: 0, incarnation: 1, ts: 1 }
  s.recordOutput('a', null, 'y', { cid: OUT, size: 100, holders: ['P1'], length: N })
  for (let i = 0; i < N; i++) t.unplaced.add(s.instance('m', i))
  const t0 = performance.now()
  sched.dispatcher.place(t, s)
  times.push(performance.now() - t0)
}
times.sort((a, b) => a - b)
console.log(`walk of a foreach of ${N} on 4 peers: median ${times[15].toFixed(2)} ms, min ${times[0].toFixed(2)} ms`)
