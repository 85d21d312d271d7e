import { describe, expect, it, vi } from 'vitest'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState, instanceKey } from '../../node/dscheduler/request-state.ts'
import { mulberry32 } from '../../node/util/prng.ts'
import type { RequestStarted } from '../../protocols/events/index.ts'

const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const N = 50
const name = (i: number): string => `f${String(i).padStart(2, '0')}`
const wf = parseWorkflow(`name: join
inputs: [x]
outputs: { z: join.z }
steps:
${Array.from({ length: N }, (_, i) => `  ${name(i)}: { run: ./m.js#f, in: { x: inputs.x }, out: [y] }`).join('\n')}
  join: { run: ./m.js#j, in: { ${Array.from({ length: N }, (_, i) => `i${i}: ${name(i)}.y`).join(', ')} }, out: [z] }
`, 'join.yaml')
const started: RequestStarted = { type: 'request-started', from: 'P1', ts: 0, request: 'r', workflow: CID, inputs: { x: { cid: CID, size: 1, holders: ['P1'], inline: new Uint8Array([1]) } }, mode: 'dataflow', store: 'distributed', submitter: 'P1' }
// one CID per producer, so a lost value resets exactly one of them
const outCid = (i: number): string => `bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxq${'abcdefghijklmnopqrstuvwxyz234567'[i % 32]}${'abcdefghijklmnopqrstuvwxyz234567'[Math.floor(i / 32)]}u`

describe('RequestState.inputsReady: a wide fan-in', () => {
  it('answers what a full scan answers, in any arrival order and after a lost value, at O(1) per event that changes nothing', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const s = new RequestState(wf, started)
      for (let i = 0; i < N; i++) s.instance(name(i), null)
      const join = s.instance('join', null)
      const full = (): boolean => Object.values(s.step('join').in).every(src => s.resolve(src, 'join', null).state !== 'pending')
      const order = Array.from({ length: N }, (_, i) => i)
      const rnd = mulberry32(seed)
      for (let i = N - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [order[i], order[j]] = [order[j], order[i]] }
      const spy = vi.spyOn(s, 'resolve')
      let calls = 0
      for (const [k, i] of order.entries()) {
        s.recordOutput(name(i), null, 'y', { cid: outCid(i), size: 8, holders: ['P1'] })
        spy.mockClear()
        // the join is examined on every arrival; one that is not its pending input costs one resolve
        expect(s.inputsReady(join)).toBe(k === N - 1)
        calls += spy.mock.calls.length
        expect(full()).toBe(k === N - 1)
        // a second look at the same state, as another event in the tick would cause, is O(1) or a full yes
        spy.mockClear()
        expect(s.inputsReady(join)).toBe(k === N - 1)
        if (k < N - 1) expect(spy.mock.calls.length).toBe(1)
      }
      // every position is passed over about twice over the whole request (a lap, then the wrap), never N per event
      expect(calls).toBeLessThanOrEqual(4 * N)
      // a lost value makes one input pending again: the answer is false at once, then true when it is back
      const lost = order[Math.floor(rnd() * N)]
      expect(s.forgetCid(outCid(lost)).reset.map(r => r.step)).toEqual([name(lost)])
      expect(s.inputsReady(join)).toBe(false)
      expect(full()).toBe(false)
      s.recordOutput(name(lost), null, 'y', { cid: outCid(lost), size: 8, holders: ['P1'] })
      expect(s.inputsReady(join)).toBe(true)
      expect(s.instances.get(instanceKey('join', null))).toBe(join)
      spy.mockRestore()
    }
  })
})

describe('RequestState counters: surelyRunning and firstFailure', () => {
  const done = (step: string): Parameters<RequestState['recordDone']>[0] => ({ type: 'step-done', from: 'P1', ts: 0, request: 'r', step, index: null, attempt: 0, incarnation: 0, streams: {} }) as unknown as Parameters<RequestState['recordDone']>[0]
  it('say running while any record is unfinished, agree with outcome() at the end, and count a reset as unfinished again', () => {
    const s = new RequestState(wf, started)
    for (let i = 0; i < N; i++) s.instance(name(i), null)
    s.instance('join', null)
    for (let i = 0; i < N; i++) {
      s.recordOutput(name(i), null, 'y', { cid: outCid(i), size: 8, holders: ['P1'] })
      expect(s.recordDone(done(name(i)))).toBe(true)
      // a duplicate step-done changes nothing
      expect(s.recordDone(done(name(i)))).toBe(false)
      expect(s.surelyRunning()).toBe(true)
      expect(s.outcome().status).toBe('running')
    }
    s.recordOutput('join', null, 'z', { cid: CID, size: 8, holders: ['P1'] })
    s.recordDone(done('join'))
    expect(s.surelyRunning()).toBe(false)
    expect(s.outcome().status).toBe('ok')
    // a lost value re-opens its producer
    s.forgetCid(outCid(7))
    expect(s.surelyRunning()).toBe(true)
    expect(s.firstFailure()).toBeUndefined()
    expect(s.recordFailed(name(7), null, 'boom')).toBe(true)
    expect(s.surelyRunning()).toBe(false)
    expect(s.firstFailure()).toBe(`step ${name(7)} failed: boom`)
    expect(s.outcome().status).toBe('failed')
  })
})
