import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { run, failure, spec } from './helpers.ts'

const OK = 'export default async (ctx) => ({ v: (await ctx.input("n")) * 2 })'

describe.each(ISOLATIONS)('executor (%s isolation): failing functions', (isolation) => {
  let pool: WorkerPool
  beforeAll(() => { pool = new WorkerPool({ slots: 2, graceMs: 300, isolation }) })
  afterAll(async () => {
    await pool.stop()
    expect(pool.stats().instances).toBe(0)
  })

  async function stillWorks (): Promise<void> {
    const { rec, result } = run(pool, OK, ['v'], { inputs: { n: 21 } })
    await result
    expect(rec.outputs.v).toBe(42)
  }

  it('a throw fails with FunctionError carrying the message and stack', async () => {
    const code = `function inner () { throw new TypeError('kaputt ' + 42) }
export default async function (ctx) { inner() }`
    const err = await failure(run(pool, code, [], { step: { name: 'thrower', index: null } }).result)
    expect(err.name).toBe('FunctionError')
    expect(err.step).toBe('thrower')
    expect(err.message).toContain('step thrower')
    expect(err.message).toContain('kaputt 42')
    expect(err.functionMessage).toBe('kaputt 42')
    expect(err.functionStack).toMatch(/TypeError: kaputt 42\n\s+at inner/)
    expect(err.stack).toMatch(/at inner/)
    // the executor's own frames are cut off
    expect(err.functionStack).not.toContain('instance-runtime')
    // the instance survives a throw: the next call is warm
    const again = await failure(run(pool, code, []).result)
    expect(again.name).toBe('FunctionError')
  })

  it('a non-Error throw still fails with FunctionError', async () => {
    const err = await failure(run(pool, 'export default async () => { throw "plain string" }', []).result)
    expect(err.name).toBe('FunctionError')
    expect(err.message).toContain('plain string')
  })

  it('a hang fails with StepTimeoutError, and the pool still works afterwards', async () => {
    const code = 'export default async (ctx) => { ctx.log("spinning"); for (;;) {} }'
    const err = await failure(run(pool, code, [], { timeoutMs: 500 }).result)
    expect(err.name).toBe('StepTimeoutError')
    expect(err.message).toContain('500 ms')
    expect(err.timeoutMs).toBe(500)
    await stillWorks()
  })

  it('a module that hangs while loading fails with StepTimeoutError', async () => {
    const err = await failure(run(pool, spec('for (;;) {}\nexport default () => {}'), [], { timeoutMs: 500 }).result)
    expect(err.name).toBe('StepTimeoutError')
    expect(err.message).toContain('did not load')
    await stillWorks()
  })

  it('on timeout ctx.signal aborts inside the function', async () => {
    const code = `export default async (ctx) => {
      await new Promise(r => ctx.signal.addEventListener('abort', r))
      ctx.log('aborted:', ctx.signal.reason.name)
      await new Promise(r => setTimeout(r, 60_000))
    }`
    // warm first: the timeout bounds a cold start too, and a slow start would time out before the function runs
    await pool.prewarm(spec(code))
    const { rec, result } = run(pool, code, [], { timeoutMs: 300 })
    const err = await failure(result)
    expect(err.name).toBe('StepTimeoutError')
    expect(rec.logs).toContain('aborted: StepTimeoutError')
  })

  it('a memory hog fails with StepOutOfMemoryError and the host survives', async () => {
    const code = `export default async (ctx) => {
      const keep = []
      for (;;) keep.push(new Array(10_000).fill({ x: Math.random() }))
    }`
    const err = await failure(run(pool, spec(code, 32), [], { step: { name: 'hog', index: null } }).result)
    expect(err.name).toBe('StepOutOfMemoryError')
    expect(err.message).toContain('step hog')
    expect(err.memoryMb).toBe(32)
    await stillWorks()
  })

  it('process.exit() in user code fails with StepCrashedError', async () => {
    const err = await failure(run(pool, 'export default async () => { process.exit(3) }', []).result)
    expect(err.name).toBe('StepCrashedError')
    expect(err.exitCode).toBe(3)
    await stillWorks()
  })

  it('an uncaught error in a timer fails with StepCrashedError naming it', async () => {
    const code = `export default async () => {
      setTimeout(() => { throw new RangeError('from a timer') }, 10)
      await new Promise(r => setTimeout(r, 60_000))
    }`
    const err = await failure(run(pool, code, []).result)
    expect(err.name).toBe('StepCrashedError')
    expect(err.message).toContain('from a timer')
    await stillWorks()
  })

  it('cancel via opts.signal: the function sees ctx.signal abort, then StepCancelledError', async () => {
    const code = `export default async (ctx) => {
      ctx.signal.addEventListener('abort', () => ctx.log('saw abort', ctx.signal.aborted))
      ctx.output('first', 1)
      await new Promise(r => setTimeout(r, 60_000))
    }`
    const ac = new AbortController()
    const { rec, result } = run(pool, code, ['first', 'second'], { signal: ac.signal })
    while (rec.outputs.first === undefined) await new Promise(r => setTimeout(r, 5))
    ac.abort()
    const err = await failure(result)
    expect(err.name).toBe('StepCancelledError')
    expect(rec.logs).toContain('saw abort true')
    await stillWorks()
  })

  it('cancel while awaiting an input rejects ctx.input so the function can end', async () => {
    const code = `export default async (ctx) => {
      try { await ctx.input('never') } catch (e) { ctx.log('input rejected:', e.name) }
    }`
    const ac = new AbortController()
    const { rec, result } = run(pool, code, [], {
      signal: ac.signal,
      // cancel once the function is waiting for the input (not after a fixed time: a cold start may take longer)
      input: async () => { setTimeout(() => { ac.abort() }, 20); return await new Promise(() => {}) }
    })
    const err = await failure(result)
    expect(err.name).toBe('StepCancelledError')
    expect(rec.logs).toContain('input rejected: StepCancelledError')
  })

  it('an already aborted signal fails at once without running the function', async () => {
    const code = 'export default async (ctx) => { ctx.log("ran") }'
    await run(pool, code, []).result // warm it up, so the check is not just the cold start noticing
    const ac = new AbortController()
    ac.abort()
    const { rec, result } = run(pool, code, [], { signal: ac.signal })
    const err = await failure(result)
    expect(err.name).toBe('StepCancelledError')
    expect(rec.logs).not.toContain('ran')
  })
})
