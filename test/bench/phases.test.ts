import { describe, expect, it } from 'vitest'
import { PhaseBook, spansOf, stepKind, type RunWithPhases } from '../../testnet/bench/phases.ts'
import { parseWorkflow } from '../../node/workflow/index.ts'

const wf = parseWorkflow(`
version: 1
name: pair
inputs: [x]
outputs: { z: c.z }
steps:
  a: { run: ./f.js#a, in: { x: inputs.x }, out: [y] }
  b: { run: ./f.js#b, in: { x: inputs.x }, out: [y] }
  c: { run: ./f.js#c, in: { p: a.y, q: b.y }, out: [z] }
`, 'pair.yaml')

const run = (step: string, peer: string, phases: RunWithPhases['phases'], outcome = 'done'): RunWithPhases =>
  ({ step, index: null, peer, outcome, firedAt: 0, phases })

describe('run phases (testnet/bench/phases.ts)', () => {
  it('turns the stages of a run into the spans between them, leaving out those it did not go through', () => {
    expect(spansOf({ readyAt: 100, slotAt: 103, postedAt: 110, startedAt: 112, endedAt: 162, resultAt: 170, doneAt: 171 }))
      .toEqual({ queue: 3, inputs: 7, toInstance: 2, run: 50, resultBack: 8, publish: 1 })
    // queued behind its producer: no readiness and no slot of its own
    expect(spansOf({ postedAt: 50, startedAt: 90, endedAt: 140, resultAt: 141, doneAt: 141 }))
      .toEqual({ toInstance: 40, run: 50, resultBack: 1, publish: 0 })
    expect(stepKind('cycles_00000012')).toBe('cycles')
    expect(stepKind('split')).toBe('split')
  })

  it('times each hand-off from the last producer done to the consumer ready, local or remote; unfinished runs count nowhere', () => {
    const book = new PhaseBook(wf)
    book.add([
      run('a', 'P1', { readyAt: 0, slotAt: 0, postedAt: 1, startedAt: 2, endedAt: 52, resultAt: 55, doneAt: 60 }),
      run('b', 'P2', { readyAt: 0, slotAt: 0, postedAt: 1, startedAt: 2, endedAt: 70, resultAt: 72, doneAt: 75 }),
      run('c', 'P2', { readyAt: 79, slotAt: 80, postedAt: 81, startedAt: 82, endedAt: 90, resultAt: 91, doneAt: 92 }),
      run('c', 'P3', { readyAt: 200 }, 'aborted')
    ])
    book.add([
      run('a', 'P1', { readyAt: 0, slotAt: 0, postedAt: 1, startedAt: 2, endedAt: 80, resultAt: 81, doneAt: 90 }),
      run('b', 'P2', { readyAt: 0, slotAt: 0, postedAt: 1, startedAt: 2, endedAt: 40, resultAt: 41, doneAt: 45 }),
      run('c', 'P2', { readyAt: 110, slotAt: 110, postedAt: 111, startedAt: 112, endedAt: 120, resultAt: 121, doneAt: 121 })
    ])
    // c waited on b (local, 4 ms) in the first request and on a (remote, 20 ms) in the second
    expect(book.handoffs).toEqual({ local: [4], remote: [20] })
    const table = book.table()
    expect(table[0]).toMatch(/step kind\s+runs\s+queue\s+inputs\s+toInstance\s+run\s+resultBack\s+publish/)
    expect(table.find(l => l.startsWith('c '))).toMatch(/^c\s+2\s/)
    expect(table.at(-1)).toBe("hand-off, last producer's done -> inputs exist here: local 4/4 (1), remote 20/20 (1)")
  })
})
