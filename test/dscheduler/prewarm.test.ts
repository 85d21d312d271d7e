import { describe, expect, it } from 'vitest'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState } from '../../node/dscheduler/request-state.ts'
import { WorkflowHistory } from '../../node/dscheduler/history.ts'
import { maxOverlap, moduleKey, moduleWidths, observedConcurrency, prewarmCounts, Prewarmer } from '../../node/dscheduler/prewarm.ts'
import type { LoadedWorkflow } from '../../node/dscheduler/types.ts'
import type { InstanceSpec } from '../../node/executor/types.ts'
import type { RequestStarted } from '../../protocols/events/index.ts'

const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** A loaded workflow whose module CID is its module path (what the pool keys instances by). */
function loaded (yaml: string): LoadedWorkflow {
  const workflow = parseWorkflow(yaml, 't.yaml')
  return { cid: 'wf-' + workflow.name, workflow, functionOf: step => ({ code: { cid: workflow.steps[step].module, code: '' }, exportName: step }) }
}

const chain = loaded(`name: chain
inputs: [x]
outputs: { z: d.z }
steps:
  a: { run: ./m.js#a, in: { x: inputs.x }, out: [z] }
  b: { run: ./m.js#b, in: { x: a.z }, out: [z] }
  c: { run: ./m.js#c, in: { x: b.z }, out: [z] }
  d: { run: ./m.js#d, in: { x: c.z }, out: [z] }
`)

// a source, three parallel steps of module p.js, a join; and a foreach of module q.js
const fan = loaded(`name: fan
inputs: [x]
outputs: { z: join.z, w: each.w }
steps:
  src: { run: ./m.js#src, in: { x: inputs.x }, out: [z, list] }
  p1: { run: ./p.js#p, in: { x: src.z }, out: [z] }
  p2: { run: ./p.js#p, in: { x: src.z }, out: [z] }
  p3: { run: ./p.js#p, in: { x: src.z }, out: [z] }
  join: { run: ./m.js#join, in: { a: p1.z, b: p2.z, c: p3.z }, out: [z] }
  each: { run: ./q.js#each, foreach: src.list, in: { v: $item }, out: [w] }
`)

const key = (wf: LoadedWorkflow, step: string): string => moduleKey(wf.functionOf(step).code.cid, wf.workflow.steps[step].memoryMb)
const noHistory = new WorkflowHistory()

describe('pre-warming: how many instances a peer warms for a request', () => {
  it('follows the module\'s width in the DAG when no request of the workflow ran yet', () => {
    // a chain of one module needs 2 (a step and the next one starting as it ends), not one per step
    expect(moduleWidths(chain).get(key(chain, 'a'))?.width).toBe(2)
    const w = moduleWidths(fan)
    // m.js: src at depth 0, join at depth 2, never adjacent to each other: 1
    expect(w.get(key(fan, 'src'))?.width).toBe(1)
    // p.js: three steps at one depth
    expect(w.get(key(fan, 'p1'))?.width).toBe(3)
    // a foreach's width is known only when it runs
    expect(w.get(key(fan, 'each'))?.width).toBe(Infinity)
    const counts = new Map(prewarmCounts(fan, noHistory, true, 4).map(c => [moduleKey(c.spec.code.cid, c.spec.memoryMb), c.count]))
    expect(counts).toEqual(new Map([[key(fan, 'src'), 1], [key(fan, 'p1'), 3], [key(fan, 'each'), 4]]))
    // never more than the slots
    expect(prewarmCounts(fan, noHistory, false, 2).map(c => c.count)).toEqual([1, 2, 2])
  })

  it('follows what earlier requests ran at once on a peer of the same role (start peer, or the busiest other)', () => {
    const h = new WorkflowHistory()
    const k = key(fan, 'each')
    h.recordConcurrency(fan.cid, k, { start: 3, other: 1 })
    const count = (start: boolean): number | undefined => prewarmCounts(fan, h, start, 4).find(c => c.spec.code.cid === './q.js')?.count
    expect(count(true)).toBe(3)
    // one more than the busiest other peer ran: which other peer gets the most varies between requests
    expect(count(false)).toBe(2)
    // the most of the last few requests (placement varies), and the slots still bound it
    h.recordConcurrency(fan.cid, k, { start: 1, other: 6 })
    expect([count(true), count(false)]).toEqual([3, 4])
    for (let i = 0; i < 4; i++) h.recordConcurrency(fan.cid, k, { start: 2, other: 0 })
    // a module a peer of that role never ran is not warmed there
    expect([count(true), count(false)]).toEqual([2, undefined])
    // another module of the workflow, not learned, still goes by width
    expect(prewarmCounts(fan, h, false, 4).find(c => c.spec.code.cid === './p.js')?.count).toBe(3)
  })
})

describe('pre-warming: what a finished request teaches', () => {
  const started: RequestStarted = { type: 'request-started', from: 'S', ts: 0, request: 'r1', workflow: CID, inputs: {}, mode: 'dataflow', store: 'distributed', submitter: 'S' }
  const done = (s: RequestState, step: string, index: number | null, from: string, startAt: number, endAt: number, coldStartMs = 0): void => {
    s.instance(step, index).done = { type: 'step-done', from, ts: endAt, request: 'r1', step, index, attempt: 0, incarnation: 1, streams: {}, coldStartMs, readyAt: startAt - coldStartMs, startAt, endAt }
  }

  it('counts, per module, the most instances running at once on the start peer and on the busiest other peer', () => {
    const s = new RequestState(fan.workflow, started)
    done(s, 'src', null, 'S', 0, 10)
    done(s, 'p1', null, 'S', 10, 20)
    done(s, 'p2', null, 'A', 10, 20)
    // its cold start made it overlap p2: the instance was taken at 5
    done(s, 'p3', null, 'A', 20, 30, 15)
    done(s, 'join', null, 'S', 30, 40)
    // foreach: B runs two at once, C one after the other (a step starting as another ends reuses its instance)
    done(s, 'each', 0, 'B', 10, 50)
    done(s, 'each', 1, 'B', 20, 60)
    done(s, 'each', 2, 'C', 10, 20)
    done(s, 'each', 3, 'C', 20, 30)
    const c = observedConcurrency(s, fan)
    expect(c.get(key(fan, 'src'))).toEqual({ start: 1, other: 0 })
    expect(c.get(key(fan, 'p1'))).toEqual({ start: 1, other: 2 })
    expect(c.get(key(fan, 'each'))).toEqual({ start: 0, other: 2 })
  })

  it('maxOverlap: the most intervals open at once', () => {
    expect(maxOverlap([])).toBe(0)
    expect(maxOverlap([[0, 10], [10, 20], [20, 30]])).toBe(1)
    expect(maxOverlap([[0, 10], [5, 20], [6, 7], [19, 30]])).toBe(3)
  })

  it('a Prewarmer warms and holds at start, releases at the end, and learns only from dataflow requests that succeeded', () => {
    const calls: Array<{ spec: InstanceSpec, count?: number, holder?: string }> = []
    const released: string[] = []
    const pool = {
      prewarm: async (spec: InstanceSpec, count?: number, holder?: string) => { calls.push({ spec, count, holder }) },
      release: (holder: string) => { released.push(holder) }
    }
    const h = new WorkflowHistory()
    const onS = new Prewarmer(pool, h, 'S', 4, () => {})
    const s = new RequestState(chain.workflow, started)
    onS.start(s, chain)
    expect(calls).toEqual([{ spec: { code: { cid: './m.js', code: '' }, memoryMb: s.step('a').memoryMb }, count: 2, holder: 'r1' }])
    done(s, 'a', null, 'S', 0, 10)
    done(s, 'b', null, 'S', 10, 20)
    done(s, 'c', null, 'A', 20, 30)
    done(s, 'd', null, 'S', 30, 40)
    onS.end(s, chain, false)
    expect(released).toEqual(['r1'])
    expect(h.expectedConcurrency(chain.cid, key(chain, 'a'))).toBeUndefined()
    onS.end(s, chain, true)
    expect(h.expectedConcurrency(chain.cid, key(chain, 'a'))).toEqual({ start: 1, other: 1 })
    // the next request warms what was learned: one instance here, and two on a peer that is not its start
    calls.length = 0
    onS.start(new RequestState(chain.workflow, { ...started, request: 'r2' }), chain)
    new Prewarmer(pool, h, 'A', 4, () => {}).start(new RequestState(chain.workflow, { ...started, request: 'r2' }), chain)
    expect(calls.map(c => [c.count, c.holder])).toEqual([[1, 'r2'], [2, 'r2']])
    // a peer that claims more instances of a module than it warmed starts the extra ones at the claim (up to slots)
    calls.length = 0
    onS.claimed(s, { code: { cid: './m.js', code: '' }, memoryMb: 128 }, 3)
    onS.claimed(s, { code: { cid: './m.js', code: '' }, memoryMb: 128 }, 9)
    expect(calls.map(c => [c.count, c.holder])).toEqual([[3, 'r1'], [4, 'r1']])
    // control requests place differently and warm nothing ahead: they teach nothing
    const control = new RequestState(chain.workflow, { ...started, request: 'r3', mode: 'control' })
    done(control, 'a', null, 'S', 0, 10)
    const before = h.expectedConcurrency(chain.cid, key(chain, 'a'))
    onS.end(control, chain, true)
    expect(h.expectedConcurrency(chain.cid, key(chain, 'a'))).toEqual(before)
  })
})
