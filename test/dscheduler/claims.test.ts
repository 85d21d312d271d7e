import { describe, expect, it } from 'vitest'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState, instanceKey } from '../../node/dscheduler/request-state.ts'
import { claimable, localityBytes, nextAttempt, winnerOf, type ClaimRules } from '../../node/dscheduler/claims.ts'
import { claimWinner, rankCandidates, rendezvousScore } from '../../node/dscheduler/placement.ts'
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
  it('the winner is the highest attempt, then the highest rendezvous score, the same whatever the order', () => {
    const key = instanceKey('a', null)
    const [p, q] = ['P1', 'P2'].sort((x, y) => rendezvousScore(y, key) > rendezvousScore(x, key) ? 1 : -1)
    expect(claimWinner(key, [{ peer: q, attempt: 0 }, { peer: p, attempt: 0 }])).toBe(p)
    expect(claimWinner(key, [{ peer: p, attempt: 0 }, { peer: q, attempt: 1 }])).toBe(q)
  })

  it('void claims do not win: dead claimant, lapsed lease, earlier incarnation, below the floor', () => {
    const s = state('dataflow')
    const rec = s.instance('a', null)
    rec.claims.set('P2', { attempt: 0, incarnation: 5 })
    const key = instanceKey('a', null)
    expect(winnerOf(key, rec, rules(), 1000)).toBe('P2')
    expect(winnerOf(key, rec, rules({ live: ['P1', 'P3'] }), 1000)).toBeUndefined()
    expect(winnerOf(key, rec, rules({ heard: { P2: 0 } }), 5000)).toBeUndefined()
    expect(winnerOf(key, rec, rules({ incarnations: { P2: 6 } }), 1000)).toBeUndefined()
    rec.floor = 1
    expect(winnerOf(key, rec, rules(), 1000)).toBeUndefined()
    expect(nextAttempt(rec)).toBe(1)
    rec.claims.set('P3', { attempt: 3, incarnation: 1 })
    expect(nextAttempt(rec)).toBe(4)
  })

  it('dataflow claims a step reading only workflow inputs at once, a consumer once its first movable data exists', () => {
    const s = state('dataflow')
    expect(claimable(s, 'a', null)).toBe(true)
    expect(claimable(s, 'c', null)).toBe(false)
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 2 })
    expect(claimable(s, 'b', 0)).toBe(true)
    s.recordOutput('b', 0, 'w', big('P3', 5000))
    // c reads b.w, a list of two: the first element exists and is worth moving, so c is placed now, by it
    expect(claimable(s, 'c', null)).toBe(true)
    expect(localityBytes(s, 'c', null).get('P3')).toBe(5000)
    expect(rankCandidates('c#', ['P1', 'P2', 'P3'], localityBytes(s, 'c', null))[0]).toBe('P3')
  })

  it('control claims a step only when every predecessor returned', () => {
    const s = state('control')
    expect(claimable(s, 'a', null)).toBe(true)
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 1 })
    expect(claimable(s, 'b', 0)).toBe(false)
    s.recordDone({ type: 'step-done', from: 'P2', ts: 1, request: 'r', step: 'a', index: null, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 })
    expect(claimable(s, 'b', 0)).toBe(true)
    expect(claimable(s, 'c', null)).toBe(false)
  })

  it('a lost value resets its producer so it runs again (lineage)', () => {
    const s = state('dataflow')
    s.recordOutput('a', null, 'y', { ...big('P2'), length: 1 })
    s.instance('a', null).claims.set('P2', { attempt: 0, incarnation: 1 })
    s.recordDone({ type: 'step-done', from: 'P2', ts: 1, request: 'r', step: 'a', index: null, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 })
    const { reset } = s.forgetCid(OUT)
    expect(reset.map(r => r.step)).toEqual(['a'])
    expect(s.instance('a', null).done).toBeUndefined()
    expect(s.instance('a', null).floor).toBe(1)
    expect(s.resolveRef({ kind: 'step', step: 'a', output: 'y' }, 'b', null).state).toBe('pending')
  })
})
