import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { assertValue } from '../../node/values/codec.ts'
import { run, failure, spec } from './helpers.ts'

describe.each(ISOLATIONS)('executor (%s isolation): outputs and the function API', (isolation) => {
  let pool: WorkerPool
  beforeAll(() => { pool = new WorkerPool({ slots: 2, isolation }) })
  afterAll(async () => { await pool.stop() })

  it('posts a ctx.output to the host before the function returns', async () => {
    const code = `export default async function (ctx) {
      ctx.output('early', { n: await ctx.input('n') })
      await new Promise(r => setTimeout(r, 400))
      return { late: 'done' }
    }`
    let outputBeforeReturn = false
    const { rec, result } = run(pool, code, ['early', 'late'], { inputs: { n: 7 } })
    // the probe runs on the host while the function is still sleeping
    const probe = (async () => {
      while (rec.outputs.early === undefined) await new Promise(r => setTimeout(r, 5))
      outputBeforeReturn = true
    })()
    let resolvedAt = 0
    const r = await result.then(x => { resolvedAt = Date.now(); return x })
    await probe
    expect(outputBeforeReturn).toBe(true)
    const early = rec.events.find(e => e.name === 'early')
    expect(early?.value).toEqual({ n: 7 })
    expect(early!.at).toBeLessThan(r.endedAt)
    expect(early!.at).toBeLessThan(resolvedAt)
    expect(rec.outputs.late).toBe('done')
  })

  it('says mid-run once per turn of outputs posted while the function runs on, never for outputs at its return', async () => {
    const code = `export default async function (ctx) {
      ctx.output('a', 1); ctx.output('b', 2)
      await new Promise(r => setTimeout(r, 30))
      ctx.output('c', 3)
      await new Promise(r => setTimeout(r, 30))
      ctx.output('d', 4)
      return { e: 5 }
    }`
    const order: string[] = []
    const { rec, result } = run(pool, code, ['a', 'b', 'c', 'd', 'e'], {
      onOutput: (name) => { order.push(name) },
      onMidRun: () => { order.push('mid-run') }
    })
    await result
    expect(rec.outputs).toEqual({})
    // a and b in one turn, then c: each followed by one mid-run; d is posted right before the return: none
    expect(order).toEqual(['a', 'b', 'mid-run', 'c', 'mid-run', 'd', 'e'])
  })

  it('answers preloaded inputs without asking the host; other inputs still go to the host', async () => {
    const code = `export default async function (ctx) {
      return { sum: (await ctx.input('a')).x + (await ctx.input('a')).x + await ctx.input('b') }
    }`
    const asked: string[] = []
    const { rec, result } = run(pool, code, ['sum'], {
      preloaded: { a: { x: 20 } },
      input: async (name) => { asked.push(name); if (name === 'b') return 2; throw new Error(`asked for ${name}`) }
    })
    await result
    expect(rec.outputs.sum).toBe(42)
    expect(asked).toEqual(['b'])
  })

  it('emits stream elements with indices 0,1,2 per output, and reports stream counts', async () => {
    const code = `export default async function (ctx) {
      for (const w of ['a', 'b', 'c']) ctx.emit('words', w)
      ctx.emit('nums', 10); ctx.emit('nums', 11)
      return { total: 5 }
    }`
    const { rec, result } = run(pool, code, ['words', 'nums', 'total'])
    const r = await result
    expect(rec.emits.words).toEqual(['a', 'b', 'c'])
    expect(rec.emits.nums).toEqual([10, 11])
    expect(rec.events.filter(e => e.name === 'words').map(e => e.index)).toEqual([0, 1, 2])
    expect(r.streams).toEqual({ words: 3, nums: 2 })
    expect(rec.outputs.total).toBe(5)
  })

  it('passes request, step, inputs, bytes and logs; returned properties are outputs', async () => {
    const code = `export async function work (ctx) {
      const b = await ctx.input('bytes')
      ctx.log('hello %s', 'log', { x: 1 })
      console.log('from console')
      process.stdout.write('raw ')
      process.stdout.write('write\\n')
      console.error('to stderr')
      process.stderr.write('unterminated')
      return { info: { req: ctx.request, step: ctx.step }, echo: b, len: b.length, empty: [] }
    }`
    const { rec, result } = run(pool, code, ['info', 'echo', 'len', 'empty'], {
      exportName: 'work',
      step: { name: 'count', index: 3 },
      inputs: { bytes: new Uint8Array([1, 2, 3]) }
    })
    await result
    expect(rec.outputs.info).toEqual({ req: { id: 'req-1', workflow: 'wf' }, step: { name: 'count', index: 3 } })
    expect(rec.outputs.echo).toEqual(new Uint8Array([1, 2, 3]))
    expect(rec.outputs.len).toBe(3)
    expect(rec.outputs.empty).toEqual([])
    expect(rec.logs).toContain('hello log { x: 1 }')
    expect(rec.logs).toContain('from console')
    expect(rec.logs).toContain('raw write')
    expect(rec.logs).toContain('error: to stderr')
    expect(rec.logs).toContain('stderr: unterminated')
  })

  it('rejects ctx.input for an unknown parameter inside the function', async () => {
    const code = `export default async function (ctx) {
      try { await ctx.input('nope'); return { r: 'no error' } } catch (e) { return { r: e.message } }
    }`
    const { rec, result } = run(pool, code, ['r'])
    await result
    expect(rec.outputs.r).toContain('unknown parameter nope')
  })

  const outputFailures: Array<[string, string, string[], RegExp, string | undefined]> = [
    ['missing output', 'export default async (ctx) => { ctx.output("a", 1) }', ['a', 'b'], /"b".*never produced/, 'b'],
    ['undeclared ctx.output', 'export default async (ctx) => { ctx.output("a", 1); ctx.output("zzz", 2) }', ['a'], /"zzz".*not declared/, 'zzz'],
    ['undeclared returned property', 'export default async (ctx) => ({ a: 1, extra: 2 })', ['a'], /"extra".*not declared/, 'extra'],
    ['output twice', 'export default async (ctx) => { ctx.output("a", 1); ctx.output("a", 2) }', ['a'], /"a".*twice/, 'a'],
    ['output and returned', 'export default async (ctx) => { ctx.output("a", 1); return { a: 2 } }', ['a'], /"a".*twice/, 'a'],
    ['emit after output', 'export default async (ctx) => { ctx.output("a", 1); ctx.emit("a", 2) }', ['a'], /"a".*emit after ctx.output/, 'a'],
    ['output after emit', 'export default async (ctx) => { ctx.emit("a", 1); ctx.output("a", 2) }', ['a'], /"a".*output after ctx.emit/, 'a'],
    ['a function value', 'export default async (ctx) => { ctx.output("a", { f: () => 1 }) }', ['a'], /"a".*f is function/, 'a'],
    ['a Date value', 'export default async (ctx) => ({ a: [new Date()] })', ['a'], /"a".*\[0\] is Date/, 'a'],
    ['NaN', 'export default async (ctx) => { ctx.emit("a", NaN) }', ['a'], /"a".*NaN/, 'a'],
    ['a Map value', 'export default async (ctx) => ({ a: new Map() })', ['a'], /"a".*Map/, 'a'],
    ['returning a number', 'export default async (ctx) => 42', [], /returned a number/, undefined],
    ['returning an array', 'export default async (ctx) => [1]', [], /returned an array/, undefined],
    ['a violation caught by user code', 'export default async (ctx) => { try { ctx.output("x", 1) } catch {} ; return { a: 1 } }', ['a'], /"x".*not declared/, 'x']
  ]
  for (const [title, code, outs, re, output] of outputFailures) {
    it(`fails with OutputError on ${title}, naming step and output`, async () => {
      const err = await failure(run(pool, code, outs, { step: { name: 'mystep', index: 2 } }).result)
      expect(err.name).toBe('OutputError')
      expect(err.message).toContain('step mystep[2]')
      expect(err.message).toMatch(re)
      expect(err.step).toBe('mystep')
      expect(err.index).toBe(2)
      expect(err.output).toBe(output)
    })
  }

  it('accepts an empty list via ctx.output and undefined return with no outputs', async () => {
    const r1 = run(pool, 'export default async (ctx) => { ctx.output("a", []) }', ['a'])
    await r1.result
    expect(r1.rec.outputs.a).toEqual([])
    await run(pool, 'export default function () {}', []).result
  })

  it('fails with ModuleLoadError for a missing export and for a module that throws at load', async () => {
    const e1 = await failure(run(pool, 'export const x = 1', [], { exportName: 'nope' }).result)
    expect(e1.name).toBe('ModuleLoadError')
    expect(e1.message).toMatch(/"nope" is missing/)
    const e2 = await failure(run(pool, spec('throw new Error("bad top level")'), []).result)
    expect(e2.name).toBe('ModuleLoadError')
    expect(e2.message).toContain('bad top level')
    const e3 = await failure(run(pool, spec('export default (('), []).result)
    expect(e3.name).toBe('ModuleLoadError')
  })

  it('judges values exactly like assertValue in node/values/codec.ts', async () => {
    const bad = ['{ a: [1, () => 1] }', 'new Date(0)', 'Infinity', '{ x: undefined }', 'new Map()', '[[new Set()]]', '10n', 'Symbol("s")', '{ n: { m: -Infinity } }']
    for (const expr of bad) {
      let expected = ''
      try { assertValue(new Function(`return ${expr}`)(), 'W') } catch (e) { expected = (e as Error).message.slice('W: '.length) }
      expect(expected).not.toBe('')
      const err = await failure(run(pool, `export default async (ctx) => { ctx.output('o', ${expr}) }`, ['o']).result)
      expect(err.name).toBe('OutputError')
      expect(err.message.endsWith(expected)).toBe(true)
    }
    const good = ['null', '[true, 1.5, "s", { a: new Uint8Array(2) }]', 'Object.create(null)', 'Buffer.from("hi")']
    for (const expr of good) {
      await run(pool, `export default async (ctx) => { ctx.output('o', ${expr}) }`, ['o']).result
    }
  })
})
