import { describe, expect, it } from 'vitest'
import { ChaosPlanError, describePlan, makePlan } from '../../testnet/chaos/plan.ts'
import { mulberry32, seedOf } from '../../testnet/prng.ts'
import { percentile, recoveryMs } from '../../testnet/chaos/recovery.ts'
import { canonicalJson } from '../../testnet/chaos/reference.ts'
import { COUNTERS, CounterLedger } from '../../testnet/chaos/metrics.ts'
import { EXAMPLE_NAMES, parseWorkflowList } from '../../testnet/chaos/workload.ts'

const base = { peers: 6, requests: 30, workflows: EXAMPLE_NAMES, kill: 2, restart: true }

describe('chaos plan', () => {
  it('the same seed gives the same kill plan and workload', () => {
    const a = makePlan({ ...base, seed: 42 })
    const b = makePlan({ ...base, seed: '42' })
    expect(b).toEqual(a)
    expect(describePlan(b)).toBe(describePlan(a))
    expect(a.faults).toHaveLength(2)
  })

  it('another seed gives another plan', () => {
    const plans = [1, 2, 3, 4, 5].map(seed => JSON.stringify(makePlan({ ...base, seed }).faults))
    expect(new Set(plans).size).toBeGreaterThan(1)
    expect(makePlan({ ...base, seed: 1 }).requests).not.toEqual(makePlan({ ...base, seed: 2 }).requests)
  })

  it('kills distinct peers at distinct moments inside the load, restart delays only with --restart', () => {
    for (let seed = 0; seed < 50; seed++) {
      const p = makePlan({ ...base, peers: 8, requests: 200, kill: 3, seed })
      expect(new Set(p.faults.map(f => f.peer)).size).toBe(3)
      const at = p.faults.map(f => f.atRequest)
      expect(new Set(at).size).toBe(3)
      expect([...at].sort((x, y) => x - y)).toEqual(at)
      for (const f of p.faults) {
        expect(f.atRequest).toBeGreaterThanOrEqual(1)
        expect(f.atRequest).toBeLessThan(200)
        expect(f.peer).toBeGreaterThanOrEqual(0)
        expect(f.peer).toBeLessThan(8)
        expect(f.recoverAfterMs).toBeGreaterThan(0)
      }
    }
    expect(makePlan({ ...base, restart: false, seed: 1 }).faults.every(f => f.recoverAfterMs === undefined)).toBe(true)
    expect(makePlan({ ...base, restart: false, partition: true, seed: 1 }).faults.every(f => f.kind === 'partition' && f.recoverAfterMs !== undefined)).toBe(true)
  })

  it('requests get different inputs and unique ids', () => {
    const p = makePlan({ ...base, seed: 7, requests: 100 })
    expect(new Set(p.requests.map(r => r.requestId)).size).toBe(100)
    expect(new Set(p.requests.map(r => canonicalJson(r.inputs))).size).toBeGreaterThan(90)
    expect(new Set(p.requests.map(r => r.workflow))).toEqual(new Set(EXAMPLE_NAMES))
  })

  it('refuses plans that cannot work', () => {
    expect(() => makePlan({ ...base, peers: 3, kill: 3, seed: 1 })).toThrow(expect.objectContaining({ name: ChaosPlanError.NAME }))
    expect(() => makePlan({ ...base, requests: 0, seed: 1 })).toThrow(expect.objectContaining({ name: ChaosPlanError.NAME }))
    expect(() => parseWorkflowList('wordcount,nope')).toThrow(expect.objectContaining({ name: 'UnknownChaosWorkflowError' }))
    expect(parseWorkflowList('mixed')).toEqual(EXAMPLE_NAMES)
  })

  it('mulberry32 is deterministic and string seeds hash', () => {
    const a = mulberry32(9); const b = mulberry32(9)
    expect([a(), a(), a()]).toEqual([b(), b(), b()])
    expect(seedOf('nightly')).toBe(seedOf('nightly'))
    expect(seedOf('nightly')).not.toBe(seedOf('nightlz'))
  })
})

describe('chaos measurements', () => {
  it('recovery: until the last request in flight at the fault finished', () => {
    const reqs = [{ submittedAt: 0, finishedAt: 50 }, { submittedAt: 90, finishedAt: 400 }, { submittedAt: 95, finishedAt: 250 }, { submittedAt: 200, finishedAt: 900 }]
    expect(recoveryMs(100, reqs)).toBe(300)
    // nothing in flight: until the next completion
    expect(recoveryMs(60, [{ submittedAt: 0, finishedAt: 50 }, { submittedAt: 70, finishedAt: 130 }])).toBe(70)
    // a request in flight never finished: no recovery
    expect(recoveryMs(100, [{ submittedAt: 90 }])).toBeUndefined()
  })

  it('percentiles are nearest-rank', () => {
    expect(percentile([], 50)).toBeNull()
    expect(percentile([300, 100, 200], 50)).toBe(200)
    expect(percentile([300, 100, 200], 99)).toBe(300)
  })

  it('counters: sum over incarnations of last minus first sample', () => {
    const l = new CounterLedger()
    const c = (n: number): Record<typeof COUNTERS[number], number> => ({ claims: n, takeovers: n, reruns: 0, rereplications: 0 })
    l.record(1, c(10), false) // found running: 10 is history
    l.record(1, c(15), false)
    l.record(2, c(4), true) // started by the run: counts from zero
    l.record(3, c(7), true)
    l.record(3, c(9), true)
    expect(l.total()).toEqual({ claims: 5 + 4 + 9, takeovers: 5 + 4 + 9, reruns: 0, rereplications: 0 })
  })

  it('canonical JSON ignores key order only', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }))
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }))
  })
})
