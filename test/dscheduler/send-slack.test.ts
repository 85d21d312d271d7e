import { describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { defaultLogger } from '@libp2p/logger'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { DScheduler } from '../../node/dscheduler/scheduler.ts'
import { RequestState, instanceKey } from '../../node/dscheduler/request-state.ts'
import { newTracked } from '../../node/dscheduler/tracked.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import type { DflowEvent, RequestStarted, ValueRef } from '../../protocols/events/index.ts'
import type { Membership } from '../../node/dscheduler/types.ts'

const A = 'peer-a'
const B = 'peer-b'
const ref: ValueRef = { cid: 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', size: 1, holders: [A] }

/**
 * Peer A's view of a fan: src -> m0..m5 -> join (won by B), and near (reads m5 only). A runs m0..m4 (2 slots),
 * B runs m5. What A may hold back of its own step-done events depends on who waits on them.
 */
async function fan (opts: { history?: boolean, nearAt?: string, submitter?: string } = {}): Promise<{ sched: DScheduler, s: RequestState, done: (step: string) => DflowEvent }> {
  const file = await loadWorkflow(fileURLToPath(new URL('./fixtures/slack-fan.yaml', import.meta.url)))
  const membership: Membership = { live: () => [A, B], isLive: () => true, incarnation: 1, incarnationOf: () => 1, lastHeard: () => Date.now() }
  const sched = new DScheduler({ self: A, bus: new LocalBus(), store: {} as never, pool: {} as never, loader: {} as never, membership, logger: defaultLogger() }, { slots: 2 })
  const started: RequestStarted = { type: 'request-started', from: A, ts: 1, request: 'r1', workflow: file.cid, inputs: { n: ref }, mode: 'dataflow', store: 'distributed', submitter: opts.submitter ?? A }
  const s = new RequestState(file.workflow, started)
  const t = newTracked()
  t.state = s
  sched.requests.set('r1', t)
  const win = (step: string, peer: string): void => { s.instance(step, null).winner = { peer, attempt: 0, incarnation: 1, ts: 1 } }
  for (const name of Object.keys(file.workflow.steps)) win(name, A)
  win('m5', B)
  win('join', B)
  win('near', opts.nearAt ?? A)
  if (opts.history !== false) for (const name of Object.keys(file.workflow.steps)) sched.history.recordRun(file.cid, name, 40)
  s.recordOutput('src', null, 'x', ref)
  s.instance('src', null).done = { type: 'step-done', from: A, ts: 1, request: 'r1', step: 'src', index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 0 } as never
  const done = (step: string): DflowEvent => {
    // as the scheduler has it once the event was applied here
    s.recordOutput(step, null, 'y', ref)
    const ev = { type: 'step-done', from: A, ts: 2, request: 'r1', step, index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 2, outputs: { y: ref } } as const
    s.instances.get(instanceKey(step, null))!.done = ev as never
    return ev
  }
  return { sched, s, done }
}

describe('send slack: which own events may wait to share a message', () => {
  it('an output a consumer elsewhere waits on with more rounds to go may wait; the last rounds, and anything not ours, may not', async () => {
    const { sched, done } = await fan()
    // join (at B) still lacks m1..m5: A runs 4 of them on 2 slots, two rounds: half of one 40 ms round of slack
    const m0 = done('m0')
    expect(sched.sendSlack(m0)).toBe(20)
    // the calls of one send check share what they worked out per consumer (join), with the same answer
    const memo = new Map<object, number>()
    expect(sched.sendSlack(m0, memo)).toBe(20)
    expect([...memo.values()]).toEqual([20])
    const [join] = [...memo.keys()]
    memo.set(join, 7)
    expect(sched.sendSlack(m0, memo)).toBe(7)
    // m2..m5 pending: A's m2..m4 fit in 2 rounds, still one round after this one
    expect(sched.sendSlack(done('m1'))).toBe(20)
    // m3, m4 (A, 2 slots) and m5 (B): all run in this round, so join may run soon: no waiting
    expect(sched.sendSlack(done('m2'))).toBe(0)
    // claims and events of other peers never wait
    expect(sched.sendSlack({ type: 'step-claimed', from: A, ts: 1, request: 'r1', step: 'm3', index: null, attempt: 0, incarnation: 1 })).toBe(0)
    expect(sched.sendSlack({ ...done('m3'), from: B } as DflowEvent)).toBe(0)
  })

  it('a consumer this peer runs itself waits on nothing networked; one that can run now elsewhere, or one nobody won, cannot wait', async () => {
    const local = await fan()
    local.done('m0'); local.done('m1'); local.done('m2'); local.done('m3'); local.done('m4')
    // m5's readers: join (B, still lacks only m5 itself... which this event brings) and near (here)
    local.s.instance('m5', null).winner = { peer: A, attempt: 0, incarnation: 1, ts: 1 }
    const ev = local.done('m5')
    local.s.instance('join', null).runnable = true
    expect(local.sched.sendSlack(ev)).toBe(0)
    local.s.instance('join', null).runnable = false
    local.s.instance('join', null).winner = { peer: A, attempt: 0, incarnation: 1, ts: 1 }
    // now every reader is here: it may wait the bus's whole cap
    expect(local.sched.sendSlack(ev)).toBe(Infinity)
    local.s.instance('near', null).winner = undefined
    expect(local.sched.sendSlack(ev)).toBe(0)
  })

  it('a step nobody reads (a workflow output) never waits when the submitter is elsewhere: it waits for it to finish', async () => {
    // near (read by no step) ends here while join still runs at B
    const away = await fan({ submitter: B })
    expect(away.sched.sendSlack(away.done('near'))).toBe(0)
    // the submitter itself applied it already: it may wait
    const home = await fan()
    expect(home.sched.sendSlack(home.done('near'))).toBe(Infinity)
  })

  it('without learned step times nothing waits for a consumer elsewhere', async () => {
    const { sched, done } = await fan({ history: false })
    expect(sched.sendSlack(done('m0'))).toBe(0)
  })
})
