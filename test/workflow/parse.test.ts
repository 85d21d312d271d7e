import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseWorkflow } from '../../node/workflow/parse.ts'
import { BASE, catchError, expectIssue } from './helpers.ts'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')

describe('parseWorkflow: valid workflows', () => {
  it('parses the example of the format with defaults', () => {
    const wf = parseWorkflow(fixture('wordcount.yaml'), 'wordcount.yaml')
    expect(wf).toMatchObject({ version: 1, name: 'wordcount', description: 'count words', inputs: ['text'] })
    expect(wf.outputs.total).toEqual({ kind: 'step', step: 'merge', output: 'total' })
    expect(Object.keys(wf.steps)).toEqual(['split', 'count', 'merge'])
    expect(wf.steps.split).toEqual({
      name: 'split', module: './wordcount.ts', export: 'split', in: { text: { kind: 'input', name: 'text' } },
      out: ['chunks'], timeoutMs: 60_000, retries: 0, memoryMb: 256, trigger: 'data'
    })
    expect(wf.steps.count.foreach).toEqual({ kind: 'step', step: 'split', output: 'chunks' })
    expect(wf.steps.count.in.chunk).toEqual({ kind: 'item' })
  })

  it('parses foreach over a stream, foreach over foreach, when and oneOf in in: and outputs:', () => {
    const wf = parseWorkflow(fixture('complex.yaml'), 'complex.yaml')
    expect(wf.steps.square).toMatchObject({ timeoutMs: 500, retries: 2, memoryMb: 128, foreach: { kind: 'step', step: 'start', output: 'items' } })
    expect(wf.steps.square.in.i).toEqual({ kind: 'index' })
    expect(wf.steps.plus).toMatchObject({ timeoutMs: 120_000, foreach: { kind: 'step', step: 'square', output: 'sq' } })
    expect(wf.steps.start.trigger).toBe('eager')
    expect(wf.steps.mosaic.when).toEqual({ ref: { kind: 'step', step: 'classify', output: 'kind' }, equals: 'big' })
    expect(wf.steps.censor.when).toEqual({ ref: { kind: 'input', name: 'mode' }, in: ['strict', 'safe', 3, null] })
    const oneOf = { kind: 'oneOf', refs: [{ kind: 'step', step: 'mosaic', output: 'image' }, { kind: 'step', step: 'censor', output: 'image' }] }
    expect(wf.steps.finish.in.image).toEqual(oneOf)
    expect(wf.outputs.image).toEqual(oneOf)
    expect(wf.outputs.seed).toEqual({ kind: 'input', name: 'seed' })
    expect(wf.steps.finish.export).toBe('finish')
  })

  it('accepts version 1, the default export, and `equals: null`', () => {
    const wf = parseWorkflow('version: 1\nname: a-1\nsteps:\n  s:\n    run: ./m.js\n    when: { ref: t.x, equals: null }\n  t:\n    run: m.js#t\n    out: [x]\n', 'a.yaml')
    expect(wf.steps.s.export).toBe('default')
    expect(wf.steps.s.when).toEqual({ ref: { kind: 'step', step: 't', output: 'x' }, equals: null })
  })
})

describe('parseWorkflow: each validation error names the file, the place and the value', () => {
  it('YAML syntax error with line:column', () => {
    const err = catchError(() => parseWorkflow('name: x\nsteps:\n  a:\n    run: ./a.js: b\n', 'flows/syntax.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.issues[0].line).toBe(4)
    expect(err.issues[0].column).toBe(10)
    expect(err.message).toContain('flows/syntax.yaml:4:10: YAML syntax error')
    expect(err.message).toContain('"run: ./a.js: b"')
  })

  it('duplicate keys are a YAML error with a position', () => {
    const err = catchError(() => parseWorkflow(BASE.replace('    out: [total]', '    out: [total]\n    out: [x]'), 'dup.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.message).toMatch(/dup\.yaml:19:5: YAML syntax error \(DUPLICATE_KEY\)/)
  })

  it('unknown key', () => {
    expectIssue(BASE.replace('    foreach: split.chunks', '    foreach: split.chunks\n    parallel: 4'), { path: 'steps.count.parallel', value: 'parallel', line: 13, column: 5, text: /unknown key/ })
    expectIssue(`colour: red\n${BASE}`, { path: 'colour', value: 'colour', line: 1, column: 1 })
  })

  it('missing required key', () => {
    expectIssue(BASE.replace('    run: ./wordcount.ts#merge\n', ''), { path: 'steps.merge', value: 'run', text: /missing required key/ })
  })

  it('wrong types', () => {
    expectIssue(BASE.replace('out: [chunks]', 'out: chunks'), { path: 'steps.split.out', value: 'chunks', line: 9, column: 10, text: /must be a list/ })
    expectIssue(BASE.replace('in: { text: inputs.text }', 'in: { text: 5 }'), { path: 'steps.split.in.text', value: 5 as unknown as string, text: /must be a ref/ })
  })

  it('bad workflow name', () => {
    expectIssue(BASE.replace('name: wordcount', 'name: Word_Count'), { path: 'name', value: 'Word_Count', line: 1, column: 7, text: /\[a-z0-9-\]\+/ })
  })

  it('version other than 1', () => {
    expectIssue(`version: 2\n${BASE}`, { path: 'version', value: 2 as unknown as string, line: 1, column: 10 })
  })

  it('bad run value', () => {
    expectIssue(BASE.replace('./wordcount.ts#split', './wordcount.py#split'), { path: 'steps.split.run', value: './wordcount.py#split', line: 7, column: 10 })
  })

  it('malformed ref', () => {
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: counts }'), { path: 'steps.merge.in.counts', value: 'counts', text: /must be a ref/ })
  })

  it('ref to an unknown step', () => {
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: cuont.counts }'), { path: 'steps.merge.in.counts', value: 'cuont.counts', line: 17, column: 19, text: /unknown step "cuont"/ })
  })

  it('ref to an unknown output', () => {
    expectIssue(BASE.replace('total: merge.total', 'total: merge.sum'), { path: 'outputs.total', value: 'merge.sum', line: 4, column: 10, text: /unknown output "sum" of step "merge"/ })
  })

  it('ref to an unknown input', () => {
    expectIssue(BASE.replace('in: { text: inputs.text }', 'in: { text: inputs.txt }'), { path: 'steps.split.in.text', value: 'inputs.txt', text: /unknown workflow input "txt"/ })
  })

  it('a step named inputs', () => {
    expectIssue(BASE.replace('  merge:', '  inputs:').replace('merge.total', 'count.counts'), { path: 'steps.inputs', value: 'inputs', line: 15, column: 3 })
  })

  it('$item and $index outside foreach', () => {
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: $item }'), { path: 'steps.merge.in.counts', value: '$item', text: /only allowed in a step with foreach/ })
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: count.counts, i: { oneOf: [$index] } }'), { path: 'steps.merge.in.i.oneOf[0]', value: '$index' })
    expectIssue(BASE.replace('total: merge.total', 'total: $item'), { path: 'outputs.total', value: '$item' })
  })

  it('foreach must be STEP.OUTPUT or inputs.NAME', () => {
    expectIssue(BASE.replace('foreach: split.chunks', 'foreach: $item'), { path: 'steps.count.foreach', value: '$item', line: 12, column: 14, text: /STEP\.OUTPUT or inputs\.NAME/ })
    expectIssue(BASE.replace('foreach: split.chunks', 'foreach: split.chunkz'), { path: 'steps.count.foreach', value: 'split.chunkz' })
  })

  it('when: exactly one of equals/in, and a valid ref', () => {
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    when: { ref: count.counts }'), { path: 'steps.merge.when', value: { ref: 'count.counts' } as unknown as string, text: /exactly one of "equals" or "in"/ })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    when: { ref: split.nope, equals: 1 }'), { path: 'steps.merge.when.ref', value: 'split.nope' })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    when: { ref: split.chunks, in: 3 }'), { path: 'steps.merge.when.in', value: 3 as unknown as string })
  })

  it('oneOf: non-empty, refs only', () => {
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: { oneOf: [] } }'), { path: 'steps.merge.in.counts.oneOf', value: [] as unknown as string, text: /at least 1/ })
    expectIssue(BASE.replace('in: { counts: count.counts }', 'in: { counts: { oneOf: [count.counts, 3] } }'), { path: 'steps.merge.in.counts.oneOf[1]', value: 3 as unknown as string })
    expectIssue(BASE.replace('total: merge.total', 'total: { oneOf: [merge.total], else: 1 }'), { path: 'outputs.total.else', value: 'else' })
  })

  it('duplicate outputs and inputs', () => {
    expectIssue(BASE.replace('out: [chunks]', 'out: [chunks, chunks]'), { path: 'steps.split.out[1]', value: 'chunks', line: 9, column: 19 })
    expectIssue(BASE.replace('inputs: [text]', 'inputs: [text, text]'), { path: 'inputs[1]', value: 'text' })
  })

  it('durations', () => {
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    timeout: 30'), { path: 'steps.merge.timeout', value: 30 as unknown as string })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    timeout: 30 s'), { path: 'steps.merge.timeout', value: '30 s', text: /500ms, 30s, 2m/ })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    timeout: 0s'), { path: 'steps.merge.timeout', value: '0s', text: /positive/ })
  })

  it('retries, memory and trigger', () => {
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    retries: -1'), { path: 'steps.merge.retries', value: -1 as unknown as string })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    retries: 1.5'), { path: 'steps.merge.retries', value: 1.5 as unknown as string })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    memory: 1GB'), { path: 'steps.merge.memory', value: '1GB' })
    expectIssue(BASE.replace('    out: [total]', '    out: [total]\n    trigger: lazy'), { path: 'steps.merge.trigger', value: 'lazy', text: /"data", "eager"/ })
  })

  it('not a mapping', () => {
    const err = catchError(() => parseWorkflow('- a\n- b\n', 'list.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.message).toContain('list.yaml')
    expect(err.message).toContain('["a","b"]')
  })

  it('cycles name the steps in the cycle', () => {
    const err = catchError(() => parseWorkflow(BASE.replace('in: { text: inputs.text }', 'in: { text: inputs.text, back: merge.total }'), 'cyc.yaml'))
    expect(err.name).toBe('WorkflowValidationError')
    expect(err.message).toContain('"split -> count -> merge -> split"')
    expect(err.message).toMatch(/cyc\.yaml:6:3: steps\.split: cycle/)
    const self = catchError(() => parseWorkflow(BASE.replace('    out: [total]', '    out: [total]\n    when: { ref: merge.total, equals: 1 }'), 'self.yaml'))
    expect(self.message).toContain('"merge -> merge"')
  })

  it('collects several issues at once', () => {
    const yaml = BASE.replace('name: wordcount', 'name: WC').replace('in: { counts: count.counts }', 'in: { counts: cuont.counts }').replace('foreach: split.chunks', 'foreach: split.chunks\n    colour: red')
    const err = catchError(() => parseWorkflow(yaml, 'many.yaml'))
    expect(err.issues.map(i => i.path).sort()).toEqual(['name', 'steps.count.colour', 'steps.merge.in.counts'])
    expect(err.message).toMatch(/^invalid workflow many\.yaml \(3 issues\)/)
  })
})
