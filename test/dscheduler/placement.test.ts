import { describe, expect, it } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { DScheduler } from '../../node/dscheduler/scheduler.ts'
import { RequestState, type InstanceRecord } from '../../node/dscheduler/request-state.ts'
import { newTracked, type Tracked } from '../../node/dscheduler/tracked.ts'
import { handoffSample, inputBytes, severalRoots, winnerOf } from '../../node/dscheduler/claims.ts'
import { insertionCost, slotWait } from '../../node/dscheduler/queue-model.ts'
import { HANDOFF_STALE_MS, WorkflowHistory } from '../../node/dscheduler/history.ts'
import type { Membership } from '../../node/dscheduler/types.ts'
import type { RequestStarted, ValueRef } from '../../protocols/events/index.ts'

const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const OUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
const MB = 1_000_000

/**
 * cycles' shape: each baseline bN feeds two consumers (cN, fN) 1 MB each, a summary reads every cN; oN are
 * unrelated steps that keep slots busy, qN producers whose consumers eN are claimed ahead of their data.
 */
const wf = parseWorkflow(`name: cyc
inputs: [x]
outputs: { s: s.z }
steps:
${[1, 2, 3, 4, 5].map(n => `  b${n}: { run: ./m.js#b, in: { x: inputs.x }, out: [d] }
  c${n}: { run: ./m.js#c, in: { d: b${n}.d }, out: [z] }
  f${n}: { run: ./m.js#f, in: { d: b${n}.d }, out: [z] }
  o${n}: { run: ./m.js#o, in: { x: inputs.x }, out: [z] }
  q${n}: { run: ./m.js#q, in: { x: inputs.x }, out: [d] }
  e${n}: { run: ./m.js#e, in: { d: q${n}.d }, out: [z] }`).join('\n')}
  s: { run: ./m.js#s, in: { ${[1, 2, 3, 4, 5].map(n => `c${n}: c${n}.z, f${n}: f${n}.z, e${n}: e${n}.z, o${n}: o${n}.z`).join(', ')} }, out: [z] }
  a: { run: ./m.js#a, in: { x: inputs.x }, out: [y] }
  m: { run: ./m.js#m, foreach: a.y, in: { v: $item }, out: [w] }
`, 'cyc.yaml')

/** Peer `self`'s scheduler with `peers` live, `slots` each, and 50 ms steps and 1 MB outputs learned. */
function setup (self: string, peers: string[], slots: number): { sched: DScheduler, s: RequestState, t: Tracked, run: (step: string, peer: string, index?: number | null) => void, placed: (step: string, index?: number | null) => string | undefined } {
  const membership: Membership = { live: () => peers, isLive: p => peers.includes(p), incarnation: 1, incarnationOf: () => 1, lastHeard: () => Date.now() }
  const sched = new DScheduler({ self, bus: new LocalBus(), store: {} as never, pool: {} as never, loader: {} as never, membership, logger: defaultLogger() }, { slots })
  // a claim made by the walk wins at once and enters the load book (no runner, no pool: placement alone)
  sched.dispatcher.examine = (_t, st, rec) => {
    rec.winner = winnerOf(rec.gid, rec, sched.claimRules)
    sched.load.set(rec.gid, rec.winner?.peer, { rec, s: st })
  }
  const started: RequestStarted = { type: 'request-started', from: self, ts: 1, request: 'r', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: [self], inline: new Uint8Array([1]) } }, mode: 'dataflow', store: 'distributed', submitter: self }
  const s = new RequestState(wf, started)
  const t = newTracked()
  t.state = s
  Object.keys(wf.steps).forEach((name, i) => t.order.set(name, i))
  sched.requests.set('r', t)
  for (const name of Object.keys(wf.steps)) sched.history.recordRun(CID, name, 50)
  for (const n of [1, 2, 3, 4, 5]) { sched.history.recordOutput(CID, `b${n}`, 'd', MB); sched.history.recordOutput(CID, `q${n}`, 'd', MB) }
  /** `step` runs on `peer` now (won, inputs there) */
  const run = (step: string, peer: string, index: number | null = null): void => {
    const rec = s.instance(step, index)
    rec.winner = { peer, attempt: 0, incarnation: 1, ts: 1 }
    rec.runnable = true
    rec.runnableAt = Date.now()
    sched.load.set(rec.gid, peer, { rec, s })
  }
  const placed = (step: string, index: number | null = null): string | undefined => s.instance(step, index).winner?.peer
  return { sched, s, t, run, placed }
}

const unplace = (t: Tracked, recs: InstanceRecord[]): void => { for (const rec of recs) t.unplaced.add(rec) }

describe('placement with a queue model', () => {
  it('slot wait: work ready later (claims made ahead of their data) is no queue now; work ready before is', () => {
    const now = 1000
    const later = [1, 2, 3, 4].map(() => ({ readyAt: now + 200, ms: 50 }))
    expect(slotWait(later, 4, now, now)).toBe(0)
    const running = [1, 2, 3, 4].map(() => ({ readyAt: now - 10, ms: 50 }))
    expect(slotWait(running, 4, now, now)).toBe(40)
    // ready when the running ones end: their slots are free then
    expect(slotWait(running, 4, now + 40, now)).toBe(0)
    // late work ends any moment, not never
    expect(slotWait([{ readyAt: now - 500, ms: 50 }], 1, now, now)).toBe(0)
  })

  it('insertion cost: a job ready before work the peer already holds pays for the slot it takes from that work', () => {
    const now = 1000
    // 4 slots: two jobs run until now + 100, two siblings are ready at now + 53 and take the two free slots
    const held = [{ readyAt: now - 10, ms: 110 }, { readyAt: now - 10, ms: 110 }, { readyAt: now + 53, ms: 50 }, { readyAt: now + 53, ms: 50 }]
    // one more ready at now + 51 finds a slot free (the wait alone says 0), but then a sibling waits until now + 100
    expect(slotWait(held, 4, now + 51, now)).toBe(0)
    expect(insertionCost(held, 4, now + 51, 50, now)).toBe(47)
    // with a slot to spare it delays nobody
    expect(insertionCost(held, 5, now + 51, 50, now)).toBe(0)
    // ready after all of them: its own wait only, as slotWait
    expect(insertionCost(held, 4, now + 60, 50, now)).toBe(slotWait(held, 4, now + 60, now))
  })

  it('siblings ready a few ms apart: no more of them stay at their data than its slots can start at once', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    const now = Date.now()
    // b1 ends last: its consumers, walked first, are ready after those of b2 and b3 (epigenomics' lanes)
    for (const [n, ago] of [[1, 0], [2, 5], [3, 10]] as const) { run(`b${n}`, 'P1'); s.instance(`b${n}`, null).runnableAt = now - ago }
    const consumers = [1, 2, 3].flatMap(n => [`c${n}`, `f${n}`])
    unplace(t, consumers.map(n => s.instance(n, null)))
    sched.dispatcher.place(t, s)
    const where = consumers.map(n => placed(n))
    expect(where.filter(p => p === 'P1').length).toBe(4)
    expect(where.filter(p => p !== 'P1' && p !== undefined).length).toBe(2)
  })

  it('cycles\' shape: consumers stay on the peer holding their 1 MB input when its slots free up as the data comes', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    // P1's 4 slots are all busy until the baselines end, and their data comes then
    for (const step of ['b1', 'b2', 'o1', 'o2']) run(step, 'P1')
    unplace(t, ['c1', 'f1', 'c2', 'f2'].map(n => s.instance(n, null)))
    sched.dispatcher.place(t, s)
    expect(['c1', 'f1', 'c2', 'f2'].map(n => placed(n))).toEqual(['P1', 'P1', 'P1', 'P1'])
  })

  it('a consumer moves when the wait at its data is longer than moving it', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    run('b1', 'P1')
    // 8 other runnable instances queue on P1's 4 slots: 2 rounds of 50 ms before c1 could start there
    for (const n of [1, 2, 3, 4, 5]) run(`o${n}`, 'P1')
    for (const n of [1, 2, 3]) run(`q${n}`, 'P1')
    unplace(t, [s.instance('c1', null)])
    sched.dispatcher.place(t, s)
    expect(placed('c1')).not.toBe('P1')
    expect(placed('c1')).toBeDefined()
  })

  it('counts the work other placers will keep at home: no consumer is sent to a peer about to be full with its own', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2'], 4)
    for (const n of [1, 2, 3]) run(`b${n}`, 'P1')
    for (const step of ['b4', 'b5', 'o1', 'o2']) run(step, 'P2')
    const consumers = [1, 2, 3, 4, 5].flatMap(n => [`c${n}`, `f${n}`])
    unplace(t, consumers.map(n => s.instance(n, null)))
    sched.dispatcher.place(t, s)
    // P1 places its 6 (P2 places c4..f5, which it keeps: its 4 slots free up exactly for them), and keeps them all:
    // 2 wait one round at their data rather than move 1 MB each to a peer as full
    expect(['c1', 'f1', 'c2', 'f2', 'c3', 'f3'].map(n => placed(n))).toEqual(Array(6).fill('P1'))
    expect(['c4', 'f4', 'c5', 'f5'].map(n => placed(n))).toEqual(Array(4).fill(undefined))
  })

  it('with idle peers, only the consumers that would queue at their data move', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    for (const n of [1, 2, 3]) run(`b${n}`, 'P1')
    unplace(t, [1, 2, 3].flatMap(n => [`c${n}`, `f${n}`]).map(n => s.instance(n, null)))
    sched.dispatcher.place(t, s)
    const where = [1, 2, 3].flatMap(n => [`c${n}`, `f${n}`]).map(n => placed(n))
    expect(where.filter(p => p === 'P1').length).toBe(4)
    expect(where.filter(p => p !== 'P1' && p !== undefined).length).toBe(2)
  })

  it('a producer queued behind full slots delivers a round later: its consumer is not sent away from that round', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    const now = Date.now()
    // o1..o4 run on P1's 4 slots; b1 and q1..q3 became runnable after them and wait for those slots
    for (const n of [1, 2, 3, 4]) { run(`o${n}`, 'P1'); s.instance(`o${n}`, null).runnableAt = now - 10 }
    for (const step of ['b1', 'q1', 'q2', 'q3']) { run(step, 'P1'); s.instance(step, null).runnableAt = now - 5 }
    unplace(t, [s.instance('c1', null)])
    sched.dispatcher.place(t, s)
    // b1's data comes when b1 ends, a round after the o's: P1's slots are free by then
    expect(placed('c1')).toBe('P1')
  })

  it('a producer that posts mid-run makes its data exist while it still holds its slot: its consumer leaves a full peer', () => {
    for (const postsAt of [undefined, 0.5]) {
      const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
      // b1..b4 just started on P1's 4 slots: their 1 MB outputs come at their end (50 ms) or half-way (25 ms)
      for (const n of [1, 2, 3, 4]) {
        run(`b${n}`, 'P1')
        if (postsAt !== undefined) sched.history.recordPost(CID, `b${n}`, 50 * postsAt, 50)
      }
      expect(sched.history.expectedPostMs(CID, 'b1')).toBe(postsAt === undefined ? undefined : 25)
      unplace(t, [s.instance('c1', null)])
      sched.dispatcher.place(t, s)
      // at the end P1's slots free as the data comes: c1 stays; half-way they are all busy for 25 ms more, while
      // moving 1 MB costs ~10: c1 goes to an idle peer
      if (postsAt === undefined) expect(placed('c1')).toBe('P1')
      else expect(['P2', 'P3', 'P4']).toContain(placed('c1'))
    }
  })

  it('claims made ahead, waiting for inputs that come later, do not count as queue', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    // longer runs are learned slowly (history.ts): enough of them that the q's are known to take ~400 ms
    for (let i = 0; i < 60; i++) for (const n of [1, 2, 3, 4]) sched.history.recordRun(CID, `q${n}`, 400)
    run('b1', 'P1')
    // P1 won e1..e4 ahead of their data: their producers (on P2) end in ~400 ms
    for (const n of [1, 2, 3, 4]) {
      run(`q${n}`, 'P2')
      const e = s.instance(`e${n}`, null)
      e.winner = { peer: 'P1', attempt: 0, incarnation: 1, ts: 1 }
      sched.load.set(e.gid, 'P1', { rec: e, s })
    }
    unplace(t, [s.instance('c1', null)])
    sched.dispatcher.place(t, s)
    expect(placed('c1')).toBe('P1')
  })

  it('learns what a hand-off to another peer costs: a consumer waits at its data when that costs less', () => {
    const place = (handoffs: boolean): string | undefined => {
      const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
      // P1 holds c1's 1 KB input, its 4 slots busy for ~20 ms more
      for (let i = 0; i < 20; i++) for (const n of [1, 2, 3, 4]) sched.history.recordRun(CID, `o${n}`, 20)
      for (const n of [1, 2, 3, 4]) run(`o${n}`, 'P1')
      s.recordOutput('b1', null, 'd', { cid: OUT, size: 1000, holders: ['P1'] })
      const c1 = s.instance('c1', null)
      c1.runnable = true
      c1.runnableAt = Date.now()
      if (handoffs) {
        // consumers became ready ~5 ms after a producer on their own peer ended, ~40 ms after one elsewhere
        for (const ms of [4, 5, 6]) sched.history.recordHandoff(false, ms)
        for (const ms of [38, 40, 42]) sched.history.recordHandoff(true, ms)
      }
      unplace(t, [c1])
      sched.dispatcher.place(t, s)
      return placed('c1')
    }
    // the link's 2 ms: a free peer elsewhere wins
    expect(place(false)).not.toBe('P1')
    // a hand-off learned at ~35 ms costs more than the wait
    expect(place(true)).toBe('P1')
  })

  it('the hop cost is a median gap, not moved by a few slow hand-offs, and forgotten when no remote one comes', () => {
    const h = new WorkflowHistory()
    const t0 = 1_000_000
    expect(h.hopMs(2, t0)).toBe(2)
    for (let i = 0; i < 20; i++) h.recordHandoff(false, 3 + (i % 3), t0)
    for (let i = 0; i < 20; i++) h.recordHandoff(true, 10 + (i % 5), t0)
    expect(h.hopMs(2, t0)).toBe(8) // median 12 - median 4
    // a burst of slow remote hand-offs (a moving average took these to hundreds of ms): the median barely moves
    for (let i = 0; i < 6; i++) h.recordHandoff(true, 900, t0 + 1000)
    expect(h.hopMs(2, t0 + 1000)).toBe(9)
    // most of the last 32 slow: it rises, up to the 500 ms cap
    for (let i = 0; i < 30; i++) h.recordHandoff(true, 2000, t0 + 2000)
    expect(h.hopMs(2, t0 + 2000)).toBe(500)
    // work then stays at its data and no remote hand-off comes: the estimate is forgotten, placement tries again
    for (let i = 0; i < 10; i++) h.recordHandoff(false, 4, t0 + 2000 + HANDOFF_STALE_MS)
    expect(h.hopMs(2, t0 + 2000 + HANDOFF_STALE_MS)).toBe(500)
    expect(h.hopMs(2, t0 + 2001 + HANDOFF_STALE_MS)).toBe(2)
  })

  it('a hand-off sample: from the last input\'s producer end to the consumer\'s readiness, local or remote', () => {
    const { s } = setup('P1', ['P1', 'P2'], 4)
    const done = (step: string, from: string, endAt: number): void => {
      s.instance(step, null).done = { type: 'step-done', from, ts: endAt, request: 'r', step, index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt }
    }
    done('b1', 'P2', 100)
    expect(handoffSample(s, 'c1', 'P1', 130)).toEqual({ remote: true, ms: 30 })
    expect(handoffSample(s, 'c1', 'P2', 104)).toEqual({ remote: false, ms: 4 })
    // ready before its producer ended (an output posted early): no sample
    expect(handoffSample(s, 'c1', 'P1', 90)).toBeUndefined()
    expect(handoffSample(s, 'o1', 'P1', 90)).toBeUndefined()
  })

  it('root steps (workflow inputs only) spread over idle peers: the submitter is no producer they would hop from', () => {
    const { sched, s, t, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 4)
    // a remote hand-off has been learned to cost ~40 ms: charged to every peer but the submitter, it kept 4 roots there
    for (const ms of [4, 5, 6]) sched.history.recordHandoff(false, ms)
    for (const ms of [38, 40, 42]) sched.history.recordHandoff(true, ms)
    const roots = [1, 2, 3, 4, 5].flatMap(n => [`b${n}`, `q${n}`]).concat(['a'])
    unplace(t, roots.map(n => s.instance(n, null)))
    sched.dispatcher.place(t, s)
    const per = new Map<string, number>()
    for (const n of roots) { const p = placed(n) as string; expect(p).toBeDefined(); per.set(p, (per.get(p) ?? 0) + 1) }
    // 11 roots on 4 idle peers: 3/3/3/2, the submitter no fuller than the others
    expect([...per.values()].sort()).toEqual([2, 3, 3, 3])
  })

  it('a lone root keeps the submitter as the producer of its workflow inputs (it would only wait for the request elsewhere)', () => {
    const one = parseWorkflow(`name: one
inputs: [x]
outputs: { y: b.y }
steps:
  a: { run: ./m.js#a, in: { x: inputs.x }, out: [y] }
  b: { run: ./m.js#b, in: { y: a.y, x: inputs.x }, out: [y] }
`, 'one.yaml')
    expect(severalRoots(one)).toBe(false)
    expect(severalRoots(wf)).toBe(true)
    const started: RequestStarted = { type: 'request-started', from: 'P1', ts: 1, request: 'r1', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: ['P1'], inline: new Uint8Array([1]) } }, mode: 'dataflow', store: 'distributed', submitter: 'P1' }
    expect([...inputBytes(new RequestState(one, started), 'a', null, new WorkflowHistory()).producers]).toEqual(['P1'])
    expect([...inputBytes(new RequestState(wf, { ...started, request: 'r2' }), 'b1', null, new WorkflowHistory()).producers]).toEqual([])
  })

  it('a foreach of 8 small-input items spreads over idle peers instead of queueing on one', () => {
    const { sched, s, t, run, placed } = setup('P1', ['P1', 'P2', 'P3', 'P4'], 2)
    run('a', 'P1')
    const list: ValueRef = { cid: OUT, size: 100, holders: ['P1'], length: 8 }
    s.recordOutput('a', null, 'y', list)
    s.instance('a', null).done = { type: 'step-done', from: 'P1', ts: 1, request: 'r', step: 'a', index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 }
    sched.load.set(s.instance('a', null).gid, undefined)
    const items = [0, 1, 2, 3, 4, 5, 6, 7].map(i => s.instance('m', i))
    unplace(t, items)
    sched.dispatcher.place(t, s)
    const per = new Map<string, number>()
    for (let i = 0; i < 8; i++) { const p = placed('m', i) as string; per.set(p, (per.get(p) ?? 0) + 1) }
    expect([...per.values()].sort()).toEqual([2, 2, 2, 2])
  })
})
