import { describe, expect, it } from 'vitest'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState, instanceKey } from '../../node/dscheduler/request-state.ts'
import { claimable, fromWinner, inputBytes, nextAttempt, recordClaim, winnerOf, type ClaimRules } from '../../node/dscheduler/claims.ts'
import { bestPeer, claimWinner, rendezvousScore, type PlacementQuery } from '../../node/dscheduler/placement.ts'
import { WorkflowHistory } from '../../node/dscheduler/history.ts'
import type { Membership } from '../../node/dscheduler/types.ts'
import type { RequestStarted, ValueRef } from '../../protocols/events/index.ts'

const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const wf = parseWorkflow(`name: t
inputs: [x]
outputs: { z: c.z }
steps:
  a: { run: ./m.js#a, in: { x: inputs.x }, out: [y] }
  b: { run: ./m.js#b, foreach: a.y, in: { v: $item }, out: [w] }
  c: { run: ./m.js#c, in: { ws: b.w, x: inputs.x }, out: [z] }
`, 't.yaml')

function state (mode: 'dataflow' | 'control'): RequestState {
  const started: RequestStarted = { type: 'request-started', from: 'P1', ts: 0, request: 'r', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: ['P1'], inline: new Uint8Array([1]) } }, mode, store: 'distributed', submitter: 'P1' }
  return new RequestState(wf, started)
}

// another CID than the input's, for the outputs
const OUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
const big = (holder: string, size = 1000): ValueRef => ({ cid: OUT, size, holders: [holder] })

function rules (opts: { live?: string[], heard?: Record<string, number>, incarnations?: Record<string, number> } = {}): ClaimRules {
  const live = opts.live ?? ['P1', 'P2', 'P3']
  const membership: Membership = {
    live: () => live,
    isLive: p => live.includes(p),
    incarnation: 1,
    incarnationOf: p => opts.incarnations?.[p],
    lastHeard: p => opts.heard?.[p] ?? 1000
  }
  return { membership, leaseMs: 3000 }
}

describe('claim rules', () => {
  const done = (from: string, attempt = 0) => ({ type: 'step-done' as const, from, ts: 1, request: 'r', step: 'a', index: null, attempt, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 })

  it('one order settles conflicts: highest attempt, then the earliest claim, then rendezvous score, whatever the order heard', () => {
    const key = instanceKey('a', null)
    const [p, q] = ['P1', 'P2'].sort((x, y) => rendezvousScore(y, key) > rendezvousScore(x, key) ? 1 : -1)
    expect(claimWinner(key, [{ peer: q, attempt: 0, ts: 5 }, { peer: p, attempt: 0, ts: 5 }])?.peer).toBe(p)
    expect(claimWinner(key, [{ peer: p, attempt: 0, ts: 5 }, { peer: q, attempt: 0, ts: 5 }])?.peer).toBe(p)
    // a later claim (made from an older view) never unseats an earlier one, even with a better score
    expect(claimWinner(key, [{ peer: q, attempt: 0, ts: 4 }, { peer: p, attempt: 0, ts: 5 }])?.peer).toBe(q)
    expect(claimWinner(key, [{ peer: p, attempt: 0, ts: 1 }, { peer: q, attempt: 1, ts: 9 }])?.peer).toBe(q)
  })

  it('void claims do not win: dead claimant, lapsed lease, earlier incarnation, below the floor', () => {
    const s = state('dataflow')
    const rec = s.instance('a', null)
    rec.claims.set('P2', { attempt: 0, incarnation: 5, ts: 1 })
    const key = instanceKey('a', null)
    expect(winnerOf(key, rec, rules(), 1000)?.peer).toBe('P2')
    expect(winnerOf(key, rec, rules({ live: ['P1', 'P3'] }), 1000)).toBeUndefined()
    expect(winnerOf(key, rec, rules({ heard: { P2: 0 } }), 5000)).toBeUndefined()
    expect(winnerOf(key, rec, rules({ incarnations: { P2: 6 } }), 1000)).toBeUndefined()
    rec.floor = 1
    expect(winnerOf(key, rec, rules(), 1000)).toBeUndefined()
    expect(nextAttempt(rec)).toBe(1)
    rec.claims.set('P3', { attempt: 3, incarnation: 1, ts: 2 })
    expect(nextAttempt(rec)).toBe(4)
  })

  it('fencing: results count only from the winning claim, a claim heard late keeps its real time', () => {
    const s = state('dataflow')
    const rec = s.instance('a', null)
    // P3's output arrived before its claim: the output implies the claim (at the output's time) ...
    recordClaim(rec, 'P3', { attempt: 0, incarnation: 1, ts: 50 })
    recordClaim(rec, 'P2', { attempt: 0, incarnation: 1, ts: 20 })
    rec.winner = winnerOf(rec.gid, rec, rules(), 1000)
    expect(rec.winner?.peer).toBe('P2')
    expect(fromWinner(rec, 'P3', { attempt: 0, incarnation: 1 })).toBe(false)
    // ... and when P3's claim event comes, its earlier real time is kept: now P3 claimed first
    expect(recordClaim(rec, 'P3', { attempt: 0, incarnation: 1, ts: 10 })).toBe(true)
    rec.winner = winnerOf(rec.gid, rec, rules(), 1000)
    expect(rec.winner?.peer).toBe('P3')
    expect(fromWinner(rec, 'P3', { attempt: 0, incarnation: 1 })).toBe(true)
    expect(fromWinner(rec, 'P3', { attempt: 1, incarnation: 1 })).toBe(false)
    expect(fromWinner(rec, 'P3', { attempt: 0, incarnation: 2 })).toBe(false)
    // a stale (lower) attempt never replaces a claimant's newer claim
    expect(recordClaim(rec, 'P2', { attempt: 2, incarnation: 1, ts: 30 })).toBe(true)
    expect(recordClaim(rec, 'P2', { attempt: 1, incarnation: 1, ts: 5 })).toBe(false)
    expect(rec.claims.get('P2')?.attempt).toBe(2)
  })

  it('dataflow claims a step reading only workflow inputs at once, a consumer once its first movable data exists', () => {
    const s = state('dataflow')
    const history = new WorkflowHistory()
    expect(claimable(s, 'a', null, history)).toBe(true)
    expect(claimable(s, 'c', null, history)).toBe(false)
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 2 })
    expect(claimable(s, 'b', 0, history)).toBe(true)
    s.recordOutput('b', 0, 'w', big('P3', 5000))
    expect(claimable(s, 'c', null, history)).toBe(true)
    expect(inputBytes(s, 'c', null, history).bytesAt.get('P3')).toBe(5000)
  })

  it('with sizes learned from earlier requests, a consumer is placed where most of its future bytes will be', () => {
    const s = state('dataflow')
    const history = new WorkflowHistory()
    history.recordOutput(CID, 'b', 'w', 1_000_000)
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 2 })
    // b[0] is placed on P1, b[1] on P3; b[0]'s 1 MB arrived first, at P1, yet c goes where both will be... equal, so the split is by bytes
    const b0 = s.instance('b', 0)
    const b1 = s.instance('b', 1)
    b0.winner = { peer: 'P1', attempt: 0, incarnation: 1, ts: 1 }
    b1.winner = { peer: 'P3', attempt: 0, incarnation: 1, ts: 1 }
    // placed is not enough: c is claimed one level ahead of producers that run
    expect(claimable(s, 'c', null, history)).toBe(false)
    b0.runnable = true
    b1.runnable = true
    expect(claimable(s, 'c', null, history)).toBe(true)
    s.recordOutput('b', 1, 'w', big('P3', 3_000_000))
    const bytes = inputBytes(s, 'c', null, history)
    expect(bytes.bytesAt.get('P3')).toBe(3_000_000)
    expect(bytes.bytesAt.get('P1')).toBe(1_000_000)
    const q: PlacementQuery = { key: 'r/c#', candidates: ['P1', 'P2', 'P3'], bytesAt: bytes.bytesAt, totalBytes: bytes.total, producers: bytes.producers, queueMs: () => 0, spread: () => 0, bytesPerMs: 100_000, hopMs: 2 }
    expect(bestPeer(q)).toBe('P3')
  })

  it('placement uses a free peer at once when the data-local one is full, unless moving the data costs more than the wait', () => {
    // P1 holds the input and runs 4 instances on 2 slots: a new one waits two rounds of `expectedMs` there
    const q = (bytes: number, expectedMs: number): PlacementQuery => ({ key: 'k', candidates: ['P1', 'P2', 'P3'], bytesAt: new Map([['P1', bytes]]), totalBytes: bytes, producers: new Set(['P1']), queueMs: p => p === 'P1' ? 2 * expectedMs : 0, spread: p => p === 'P1' ? 2 : 0, bytesPerMs: 100_000, hopMs: 2 })
    // small input: another peer starts it now
    expect(bestPeer(q(10_000, 100))).not.toBe('P1')
    // 1 GB of input, a short queue: waiting for P1 beats moving the bytes
    expect(bestPeer(q(1_000_000_000, 100))).toBe('P1')
  })

  it('control claims a step only when every predecessor returned', () => {
    const s = state('control')
    expect(claimable(s, 'a', null)).toBe(true)
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 1 })
    expect(claimable(s, 'b', 0)).toBe(false)
    s.recordDone(done('P2'))
    expect(claimable(s, 'b', 0)).toBe(true)
    expect(claimable(s, 'c', null)).toBe(false)
  })

  it('a lost value resets its producer so it runs again (lineage)', () => {
    const s = state('dataflow')
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 1 })
    s.instance('a', null).claims.set('P2', { attempt: 0, incarnation: 1, ts: 1 })
    s.recordDone(done('P2'))
    const { reset } = s.forgetCid(OUT)
    expect(reset.map(r => r.step)).toEqual(['a'])
    expect(s.instance('a', null).done).toBeUndefined()
    expect(s.instance('a', null).floor).toBe(1)
    expect(s.resolveRef({ kind: 'step', step: 'a', output: 'y' }, 'b', null).state).toBe('pending')
  })
})
