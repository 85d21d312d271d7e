import { describe, it, expect, afterEach } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { run, failure, spec } from './helpers.ts'

/**
 * Dataflow cancels runs routinely (a claim superseded by another peer's, the end of a request while a step
 * still returns): such a cancel must not cost the instance when the function heeds ctx.signal, or the next step
 * of that module on the peer waits for a cold start. Counts, not times: cold/warm starts, instances, pids.
 */
const HEEDS = `export default async (ctx) => {
  if (await ctx.input('wait')) await new Promise((resolve, reject) => {
    ctx.log('waiting')
    const t = setTimeout(resolve, 60_000)
    ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(ctx.signal.reason) })
  })
  return { v: 1 }
}`
const IGNORES = 'export default async (ctx) => { if (await ctx.input("wait")) { ctx.log("sleeping"); await new Promise(r => setTimeout(r, 60_000)) } return { v: 1 } }'
/** a module that takes a while to load (busy at top level), so a cancel can land while it starts */
const SLOW_LOAD = 'const end = Date.now() + 400; while (Date.now() < end) {}\nexport default async () => ({ v: 1 })'

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }
async function until (what: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached')
    await sleep(5)
  }
}

describe.each(ISOLATIONS)('executor (%s isolation): an aborted run keeps its instance when the function ends in time', (isolation) => {
  const pools: WorkerPool[] = []
  const make = (): WorkerPool => {
    const p = new WorkerPool({ isolation, slots: 2, graceMs: 2000 })
    pools.push(p)
    return p
  }
  afterEach(async () => {
    for (const p of pools.splice(0)) {
      await p.stop()
      expect(p.stats().instances).toBe(0)
    }
  })

  it('a cancel heeded within the grace: the same instance runs the next invocation warm', async () => {
    const pool = make()
    const s = spec(HEEDS)
    await pool.prewarm(s)
    const pids = pool.pids()
    const ac = new AbortController()
    const { rec, result } = run(pool, s, ['v'], { inputs: { wait: true }, signal: ac.signal })
    await until(() => pool.stats().busy > 0)
    ac.abort()
    expect((await failure(result)).name).toBe('StepCancelledError')
    expect(rec.outputs).toEqual({})
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, busy: 0, abortsKept: 1, abortsTerminated: 0 })
    const next = await run(pool, s, ['v'], { inputs: { wait: false } }).result
    expect(next.coldStartMs).toBe(0)
    expect(pool.stats()).toMatchObject({ instances: 1, coldStarts: 0, warmStarts: 2 })
    expect(pool.pids()).toEqual(pids)
  })

  it('a timeout heeded within the grace keeps the instance too', async () => {
    const pool = make()
    const s = spec(HEEDS + ' // timeout')
    await pool.prewarm(s)
    const err = await failure(run(pool, s, ['v'], { inputs: { wait: true }, timeoutMs: 300 }).result)
    expect(err.name).toBe('StepTimeoutError')
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, abortsKept: 1 })
    expect((await run(pool, s, ['v'], { inputs: { wait: false } }).result).coldStartMs).toBe(0)
    expect(pool.stats().coldStarts).toBe(0)
  })

  it('a function that ignores the cancel past the grace still costs its instance', async () => {
    const pool = new WorkerPool({ isolation, slots: 2, graceMs: 200 })
    pools.push(pool)
    const s = spec(IGNORES)
    await pool.prewarm(s)
    const ac = new AbortController()
    const { rec, result } = run(pool, s, ['v'], { inputs: { wait: true }, signal: ac.signal })
    // once it sleeps (a cancel before it has its input would reject ctx.input, and it would end in time)
    await until(() => rec.logs.includes('sleeping'))
    ac.abort()
    expect((await failure(result)).name).toBe('StepCancelledError')
    expect(pool.stats()).toMatchObject({ abortsKept: 0, abortsTerminated: 1 })
    const next = await run(pool, s, ['v'], { inputs: { wait: false } }).result
    expect(next.coldStartMs).toBeGreaterThan(0)
    expect(pool.stats().coldStarts).toBe(1)
  })

  it('a function that ended by the time the host looks, late only because the host was busy: its instance is kept', async () => {
    const pool = new WorkerPool({ isolation, slots: 2, graceMs: 50 })
    pools.push(pool)
    // it ends 150 ms after the cancel, past the 50 ms grace
    const s = spec(HEEDS.replace('reject(ctx.signal.reason)', 'setTimeout(() => reject(ctx.signal.reason), 150)'))
    await pool.prewarm(s)
    const ac = new AbortController()
    const { rec, result } = run(pool, s, ['v'], { inputs: { wait: true }, signal: ac.signal })
    await until(() => rec.logs.includes('waiting'))
    ac.abort()
    // the host is busy past both (in the check phase of this loop turn): on the next turn the grace timer is
    // due (timers phase) and the function's 'fail' is waiting to be read (poll phase), as on a loaded host
    await new Promise<void>(resolve => setImmediate(() => {
      const end = Date.now() + 400
      while (Date.now() < end) { /* a loaded host */ }
      resolve()
    }))
    expect((await failure(result)).name).toBe('StepCancelledError')
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, abortsKept: 1, abortsTerminated: 0 })
    const next = await run(pool, s, ['v'], { inputs: { wait: false } }).result
    expect(next.coldStartMs).toBe(0)
    expect(pool.stats()).toMatchObject({ instances: 1, coldStarts: 0, warmStarts: 2 })
  })

  it('a cancel while the instance loads gives it back: it becomes idle and the next invocation is warm', async () => {
    const pool = make()
    const s = spec(SLOW_LOAD)
    const ac = new AbortController()
    const { result } = run(pool, s, ['v'], { signal: ac.signal })
    await until(() => pool.stats().instances > 0)
    await sleep(50)
    ac.abort()
    expect((await failure(result)).name).toBe('StepCancelledError')
    expect(pool.stats()).toMatchObject({ instances: 1, starting: 1, coldStarts: 1, abortsTerminated: 0 })
    await until(() => pool.stats().idle > 0)
    expect((await run(pool, s, ['v']).result).coldStartMs).toBe(0)
    expect(pool.stats()).toMatchObject({ instances: 1, coldStarts: 1, warmStarts: 1 })
  })

  it('a cancel while a prewarmed instance loads leaves it for the next invocation', async () => {
    const pool = make()
    const s = spec(SLOW_LOAD + ' // prewarmed')
    const warming = pool.prewarm(s)
    const ac = new AbortController()
    const { result } = run(pool, s, ['v'], { signal: ac.signal })
    await sleep(50)
    ac.abort()
    expect((await failure(result)).name).toBe('StepCancelledError')
    await warming
    await until(() => pool.stats().idle > 0)
    expect((await run(pool, s, ['v']).result).coldStartMs).toBe(0)
    expect(pool.stats()).toMatchObject({ instances: 1, coldStarts: 1, warmStarts: 1 })
  })
})
