import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { criticalPath, predecessors, stepDependencies, successors, topoOrder } from '../../node/workflow/graph.ts'
import { parseWorkflow } from '../../node/workflow/parse.ts'

const wf = parseWorkflow(readFileSync(new URL('./fixtures/complex.yaml', import.meta.url), 'utf8'), 'complex.yaml')

describe('graph helpers', () => {
  it('stepDependencies lists in, foreach, when and oneOf members', () => {
    expect(stepDependencies(wf.steps.censor)).toEqual({ stepRefs: [], inputRefs: [{ kind: 'input', name: 'mode' }] })
    expect(stepDependencies(wf.steps.plus).stepRefs).toEqual([{ kind: 'step', step: 'square', output: 'sq' }])
    expect(stepDependencies(wf.steps.mosaic).stepRefs).toEqual([{ kind: 'step', step: 'classify', output: 'kind' }])
    expect(stepDependencies(wf.steps.finish).stepRefs.map(r => `${r.step}.${r.output}`)).toEqual(['mosaic.image', 'censor.image', 'plus.y'])
  })

  it('predecessors, successors and topoOrder', () => {
    expect(predecessors(wf, 'finish')).toEqual(['mosaic', 'censor', 'plus'])
    expect(predecessors(wf, 'start')).toEqual([])
    expect(successors(wf, 'square')).toEqual(['plus', 'classify'])
    const order = topoOrder(wf)
    expect(order).toEqual(['start', 'square', 'plus', 'classify', 'mosaic', 'censor', 'finish'])
    for (const s of order) for (const p of predecessors(wf, s)) expect(order.indexOf(p)).toBeLessThan(order.indexOf(s))
  })

  it('criticalPath is the heaviest chain', () => {
    const ms: Record<string, number> = { start: 10, square: 5, plus: 100, classify: 1, mosaic: 50, censor: 1, finish: 2 }
    expect(criticalPath(wf, s => ms[s.name])).toEqual({ ms: 117, path: ['start', 'square', 'plus', 'finish'] })
    ms.mosaic = 200
    expect(criticalPath(wf, s => ms[s.name])).toEqual({ ms: 218, path: ['start', 'square', 'classify', 'mosaic', 'finish'] })
  })
})
