import { describe, expect, it } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { DScheduler } from '../../node/dscheduler/scheduler.ts'
import { newTracked } from '../../node/dscheduler/tracked.ts'
import { winnerOf } from '../../node/dscheduler/claims.ts'
import type { Membership } from '../../node/dscheduler/types.ts'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState } from '../../node/dscheduler/request-state.ts'
import { WorkflowHistory } from '../../node/dscheduler/history.ts'
import { moduleKey, Prewarmer } from '../../node/dscheduler/prewarm.ts'
import { singleStepModules, warmPlan } from '../../node/dscheduler/warm-plan.ts'
import { bestPeer, placementCost, type PlacementQuery } from '../../node/dscheduler/placement.ts'
import type { LoadedWorkflow } from '../../node/dscheduler/types.ts'
import type { InstanceSpec } from '../../node/executor/types.ts'
import type { RequestStarted } from '../../protocols/events/index.ts'

/** A loaded workflow whose module CID is its module path (what the pool keys instances by). */
function loaded (yaml: string): LoadedWorkflow {
  const workflow = parseWorkflow(yaml, 't.yaml')
  return { cid: 'wf-' + workflow.name, workflow, functionOf: step => ({ code: { cid: workflow.steps[step].module, code: '' }, exportName: step }) }
}

// one module per step: a root, six parallel steps, each followed by one more, and a join
const perStep = loaded(`name: per-step
inputs: [x]
outputs: { z: join.z }
steps:
  root: { run: ./root.js#root, in: { x: inputs.x }, out: [z] }
${[1, 2, 3, 4, 5, 6].map(i => `  p${i}: { run: ./p${i}.js#p${i}, in: { x: root.z }, out: [z] }\n  q${i}: { run: ./q${i}.js#q${i}, in: { x: p${i}.z }, out: [z] }`).join('\n')}
  join: { run: ./join.js#join, in: { ${[1, 2, 3, 4, 5, 6].map(i => `q${i}: q${i}.z`).join(', ')} }, out: [z] }
`)

// the same DAG with every step in one module (the per-workflow layout)
const perWorkflow = loaded(`name: per-workflow
inputs: [x]
outputs: { z: join.z }
steps:
  root: { run: ./m.js#root, in: { x: inputs.x }, out: [z] }
${[1, 2, 3, 4, 5, 6].map(i => `  p${i}: { run: ./m.js#p${i}, in: { x: root.z }, out: [z] }\n  q${i}: { run: ./m.js#q${i}, in: { x: p${i}.z }, out: [z] }`).join('\n')}
  join: { run: ./m.js#join, in: { ${[1, 2, 3, 4, 5, 6].map(i => `q${i}: q${i}.z`).join(', ')} }, out: [z] }
`)

// shared and foreach modules are not planned: a.js runs two steps, each.js is a foreach
const mixed = loaded(`name: mixed
inputs: [x]
outputs: { z: c.z, w: each.w }
steps:
  a1: { run: ./a.js#a, in: { x: inputs.x }, out: [z, list] }
  a2: { run: ./a.js#a, in: { x: a1.z }, out: [z, list] }
  c: { run: ./c.js#c, in: { x: a2.z }, out: [z] }
  each: { run: ./each.js#each, foreach: a1.list, in: { v: $item }, out: [w] }
`)

const peers = ['A', 'B', 'C', 'S']
const four = (): number => 4

describe('warm plan: where a single-step module is warmed', () => {
  it('plans only modules one step runs, once per request (not shared modules, not foreach)', () => {
    expect(singleStepModules(mixed)).toEqual(new Set(['c']))
    expect(singleStepModules(perWorkflow)).toEqual(new Set())
    expect(singleStepModules(perStep).size).toBe(14)
    expect(warmPlan(perWorkflow, 'r1', 'S', peers, four).size).toBe(0)
  })

  it('puts the roots on the start peer and a step with its first producer while that peer has a slot at its depth', () => {
    const plan = warmPlan(perStep, 'r1', 'S', peers, four)
    expect(plan.get('root')).toBe('S')
    const level1 = [1, 2, 3, 4, 5, 6].map(i => plan.get(`p${i}`))
    // four slots on S at depth 1: the first four stay with the root, the other two go to two other peers
    expect(level1.slice(0, 4)).toEqual(['S', 'S', 'S', 'S'])
    expect(new Set(level1.slice(4)).size).toBe(2)
    expect(level1.slice(4).every(p => p !== 'S' && peers.includes(p as string))).toBe(true)
    // each q follows its p (its data), and the join follows q1
    for (let i = 1; i <= 6; i++) expect(plan.get(`q${i}`)).toBe(plan.get(`p${i}`))
    expect(plan.get('join')).toBe('S')
    // another start peer takes the roots
    expect(warmPlan(perStep, 'r1', 'B', peers, four).get('root')).toBe('B')
  })

  it('is the same on every peer: independent of the order of the live list', () => {
    const a = warmPlan(perStep, 'r7', 'S', ['S', 'C', 'B', 'A'], four)
    const b = warmPlan(perStep, 'r7', 'S', ['A', 'B', 'C', 'S'], four)
    expect([...a]).toEqual([...b])
  })

  it('respects each peer\'s slots and a start peer that is not live', () => {
    const plan = warmPlan(perStep, 'r1', 'S', peers, p => p === 'S' ? 1 : 4)
    expect([1, 2, 3, 4, 5, 6].filter(i => plan.get(`p${i}`) === 'S')).toEqual([1])
    const gone = warmPlan(perStep, 'r1', 'S', ['A', 'B', 'C'], four)
    expect([...gone.values()].every(p => ['A', 'B', 'C'].includes(p))).toBe(true)
  })
})

describe('warm plan: what each peer warms at request start', () => {
  const started: RequestStarted = { type: 'request-started', from: 'S', ts: 0, request: 'r1', workflow: 'wf', inputs: {}, mode: 'dataflow', store: 'distributed', submitter: 'S' }

  function warmedBy (self: string, wf: LoadedWorkflow, history = new WorkflowHistory()): { calls: Array<{ spec: InstanceSpec, count?: number, holder?: string }>, plan: Map<string, string> } {
    const calls: Array<{ spec: InstanceSpec, count?: number, holder?: string }> = []
    const pool = { prewarm: async (spec: InstanceSpec, count?: number, holder?: string) => { calls.push({ spec, count, holder }) }, release: () => {} }
    const plan = new Prewarmer(pool, history, self, 4, () => {}).start(new RequestState(wf.workflow, started), wf, peers, four)
    return { calls, plan }
  }

  it('per-step modules: each peer warms one instance of the modules planned on it, held for the request; together every module once', () => {
    const all: string[] = []
    for (const self of peers) {
      const { calls, plan } = warmedBy(self, perStep)
      const mine = [...plan].filter(([, p]) => p === self).map(([step]) => `./${step}.js`).sort()
      expect(calls.map(c => c.spec.code.cid).sort(), self).toEqual(mine)
      expect(calls.every(c => c.count === 1 && c.holder === 'r1')).toBe(true)
      all.push(...calls.map(c => c.spec.code.cid))
    }
    // no peer starts every module: 14 modules, 14 instances on the 4 peers together
    expect(all.sort()).toEqual(Object.keys(perStep.workflow.steps).map(s => `./${s}.js`).sort())
  })

  it('per-workflow (one shared module): warms by width and role as before, the plan is empty', () => {
    for (const self of ['S', 'A']) {
      const { calls, plan } = warmedBy(self, perWorkflow)
      expect(plan.size).toBe(0)
      // width: six steps at each of two adjacent depths, bounded by the slots
      expect(calls.map(c => [c.spec.code.cid, c.count])).toEqual([['./m.js', 4]])
    }
  })

  it('mixed: the shared and foreach modules by counts, the single-step one where the plan says', () => {
    const h = new WorkflowHistory()
    h.recordConcurrency(mixed.cid, moduleKey('./a.js', mixed.workflow.steps.a1.memoryMb), { start: 1, other: 0 })
    const onS = warmedBy('S', mixed, h)
    expect(onS.plan).toEqual(new Map([['c', 'S']]))
    expect(onS.calls.map(c => [c.spec.code.cid, c.count]).sort()).toEqual([['./a.js', 1], ['./c.js', 1], ['./each.js', 4]])
    // c.js is not warmed on A (planned on S); a.js ran only on start peers
    expect(warmedBy('A', mixed, h).calls.map(c => [c.spec.code.cid, c.count])).toEqual([['./each.js', 4]])
  })
})

describe('placement follows the warm plan', () => {
  const query = (over: Partial<PlacementQuery>): PlacementQuery => ({
    key: 'r1/q5', candidates: peers, bytesAt: new Map(), totalBytes: 0, producers: new Set(), queueMs: () => 0, spread: () => 0, bytesPerMs: 1000, hopMs: 2, ...over
  })

  it('a peer other than the planned one costs the cold start; with no plan every peer costs alike', () => {
    const warmAt = 'B'
    const q = query({ coldMs: p => p === warmAt ? 0 : 600 })
    expect(placementCost(q, 'B')).toBe(0)
    expect(placementCost(q, 'A')).toBe(600)
    // whatever the rendezvous order, the warm peer wins among idle peers
    for (const key of ['k1', 'k2', 'k3', 'k4', 'k5']) expect(bestPeer({ ...q, key })).toBe('B')
    // a queue at the warm peer longer than the cold start sends the step elsewhere
    expect(bestPeer({ ...q, queueMs: p => p === 'B' ? 700 : 0 })).not.toBe('B')
    expect(placementCost(query({}), 'A')).toBe(0)
  })

  it('history learns what a cold start costs per workflow', () => {
    const h = new WorkflowHistory()
    expect(h.expectedColdMs('wf')).toBeUndefined()
    h.recordColdStart('wf', 0)
    expect(h.expectedColdMs('wf')).toBeUndefined()
    h.recordColdStart('wf', 600)
    h.recordColdStart('wf', 900)
    expect(h.expectedColdMs('wf')).toBeCloseTo(690)
  })
})

describe('the placer follows the warm plan', () => {
  const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

  /** P1's placer after `root` ran on P1 (1 MB outputs learned, 600 ms cold starts learned), with `plan` as the request's warm plan. */
  function placeLevel1 (plan: Map<string, string> | undefined): Map<string, string | undefined> {
    const peers = ['P1', 'P2', 'P3', 'P4']
    const membership: Membership = { live: () => peers, isLive: p => peers.includes(p), incarnation: 1, incarnationOf: () => 1, lastHeard: () => Date.now() }
    const sched = new DScheduler({ self: 'P1', bus: new LocalBus(), store: {} as never, pool: {} as never, loader: {} as never, membership, logger: defaultLogger() }, { slots: 4 })
    // a claim made by the walk wins at once and enters the load book (no runner, no pool: placement alone)
    sched.dispatcher.examine = (_t, st, rec) => {
      rec.winner = winnerOf(rec.gid, rec, sched.claimRules)
      sched.load.set(rec.gid, rec.winner?.peer, { rec, s: st })
    }
    const started: RequestStarted = { type: 'request-started', from: 'P1', ts: 1, request: 'r', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: ['P1'], inline: new Uint8Array([1]) } }, mode: 'dataflow', store: 'distributed', submitter: 'P1' }
    const s = new RequestState(perStep.workflow, started)
    const t = newTracked()
    t.state = s
    if (plan !== undefined) t.warmPlan = plan
    Object.keys(perStep.workflow.steps).forEach((name, i) => t.order.set(name, i))
    sched.requests.set('r', t)
    for (const name of Object.keys(perStep.workflow.steps)) { sched.history.recordRun(CID, name, 50); sched.history.recordOutput(CID, name, 'z', 1_000_000) }
    sched.history.recordColdStart(CID, 600)
    const root = s.instance('root', null)
    root.winner = { peer: 'P1', attempt: 0, incarnation: 1, ts: 1 }
    root.runnable = true
    root.runnableAt = Date.now()
    sched.load.set(root.gid, 'P1', { rec: root, s })
    const level1 = [1, 2, 3].map(i => s.instance(`p${i}`, null))
    for (const rec of level1) t.unplaced.add(rec)
    sched.dispatcher.place(t, s)
    return new Map(level1.map(rec => [rec.step, rec.winner?.peer]))
  }

  it('without a plan, consumers stay with their data; with one, each goes where its module is warm', () => {
    expect([...placeLevel1(undefined).values()]).toEqual(['P1', 'P1', 'P1'])
    const plan = new Map([['p1', 'P3'], ['p2', 'P1'], ['p3', 'P4']])
    expect(placeLevel1(plan)).toEqual(plan)
  })
})
