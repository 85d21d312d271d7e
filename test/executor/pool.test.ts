import { describe, it, expect } from 'vitest'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { run, failure, spec, usePools } from './helpers.ts'

const TRIVIAL = 'export default async (ctx) => ({ v: 1 })'
const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

describe.each(ISOLATIONS)('executor (%s isolation): the pool', (isolation) => {
  const make = usePools({ isolation })

  it('reuses a warm instance (coldStartMs 0) after a cold start (> 0)', async () => {
    const pool = make()
    const s = spec(TRIVIAL + ' // warm')
    const cold = await run(pool, s, ['v']).result
    const warm = await run(pool, s, ['v']).result
    expect(cold.coldStartMs).toBeGreaterThan(0)
    expect(warm.coldStartMs).toBe(0)
    expect(warm.startedAt).toBeGreaterThanOrEqual(cold.endedAt)
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, busy: 0, coldStarts: 1, warmStarts: 1 })
    // a different heap limit is a different instance
    const other = await run(pool, { ...s, memoryMb: 96 }, ['v']).result
    expect(other.coldStartMs).toBeGreaterThan(0)
    expect(pool.stats().instances).toBe(2)
  })

  it('prewarm: an invoke after it is warm; one during it waits only for the rest', async () => {
    const pool = make()
    const s1 = spec(TRIVIAL + ' // prewarm1')
    await pool.prewarm(s1)
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1 })
    expect((await run(pool, s1, ['v']).result).coldStartMs).toBe(0)

    // a prewarm in progress counts: the invoke takes that instance instead of starting another
    const s2 = spec(TRIVIAL + ' // prewarm2')
    const t0 = performance.now()
    const warming = pool.prewarm(s2)
    expect(pool.stats().starting).toBe(1)
    await sleep(5)
    const r = await run(pool, s2, ['v']).result
    const elapsed = performance.now() - t0
    await warming
    expect(r.coldStartMs).toBeGreaterThan(0)
    expect(r.coldStartMs).toBeLessThan(elapsed)
    expect(pool.stats().coldStarts).toBe(1)
    expect(pool.stats().instances).toBe(2)

    // prewarm(spec, n) tops up to n instances; a second prewarm of a warm spec starts nothing
    await pool.prewarm(s1)
    expect(pool.stats().instances).toBe(2)
    await pool.prewarm(s1, 3)
    expect(pool.stats()).toMatchObject({ instances: 4, idle: 4 })
  })

  it('a prewarm of a broken module never rejects; the invoke that takes it fails with ModuleLoadError', async () => {
    const pool = make()
    const s = spec('throw new Error("broken at load")')
    await pool.prewarm(s)
    const err = await failure(run(pool, s, []).result)
    expect(err.name).toBe('ModuleLoadError')
  })

  it('slots: with 2 slots a third invocation starts only after one finishes (FIFO)', async () => {
    const pool = make({ slots: 2 })
    const code = 'export default async (ctx) => { const ms = await ctx.input("ms"); await new Promise(r => setTimeout(r, ms)); return { v: 1 } }'
    const s = spec(code)
    const runs = [600, 600, 50].map(ms => run(pool, s, ['v'], { inputs: { ms } }).result)
    await sleep(100)
    expect(pool.stats().queued).toBe(1)
    const [a, b, c] = await Promise.all(runs)
    expect(c.startedAt).toBeGreaterThanOrEqual(Math.min(a.endedAt, b.endedAt))
    expect(a.startedAt).toBeLessThan(b.endedAt)
    expect(b.startedAt).toBeLessThan(a.endedAt)
    // the third one took the instance the first finisher released
    expect(c.coldStartMs).toBe(0)
    expect(pool.stats()).toMatchObject({ instances: 2, queued: 0, busy: 0 })
  })

  it('a freed slot goes to the waiting invocation with the earliest startBy; FIFO among equal, none last', async () => {
    const pool = make({ slots: 1 })
    const s = spec(TRIVIAL + ' // startBy')
    await pool.prewarm(s)
    let open = (): void => {}
    const gate = new Promise<number>(resolve => { open = () => { resolve(1) } })
    // holds the only slot until the gate opens (an input it waits for without giving the slot back)
    const blocker = run(pool, 'export default async (ctx) => ({ v: await ctx.input("g") })', ['v'], { input: async () => await gate }).result
    const order: string[] = []
    const queued = ([['a', 300], ['b', undefined], ['c', 100], ['d', 300]] as const).map(([label, startBy]) =>
      run(pool, s, ['v'], startBy === undefined ? {} : { startBy }).result.then(r => { order.push(label); return r }))
    expect(pool.stats().queued).toBe(4)
    open()
    await Promise.all([blocker, ...queued])
    expect(order).toEqual(['c', 'a', 'd', 'b'])
  })

  it('preload runs once the invocation has its slot (a queued one holds no read values); its values reach ctx.input', async () => {
    const pool = make({ slots: 1 })
    let open = (): void => {}
    const gate = new Promise<number>(resolve => { open = () => { resolve(1) } })
    const blocker = run(pool, 'export default async (ctx) => ({ v: await ctx.input("g") })', ['v'], { input: async () => await gate }).result
    const preloads: string[] = []
    const asked: string[] = []
    const reader = 'export default async (ctx) => ({ v: [await ctx.input("a"), await ctx.input("b")] })'
    const queued = run(pool, reader, ['v'], {
      preloaded: { a: 'inline' },
      preload: async () => { preloads.push('read'); return { b: new Uint8Array([1, 2, 3]) } },
      input: async name => { asked.push(name); return null }
    })
    await sleep(50)
    expect(pool.stats().queued).toBe(1)
    expect(preloads).toEqual([])
    open()
    await Promise.all([blocker, queued.result])
    expect(preloads).toEqual(['read'])
    expect(queued.rec.outputs.v).toEqual(['inline', new Uint8Array([1, 2, 3])])
    expect(asked).toEqual([])
  })

  it('a queued invocation can be cancelled while it waits for a slot', async () => {
    const pool = make({ slots: 1 })
    const s = spec('export default async () => { await new Promise(r => setTimeout(r, 500)) }')
    const first = run(pool, s, []).result
    const ac = new AbortController()
    const second = run(pool, s, [], { signal: ac.signal }).result
    await sleep(50)
    ac.abort()
    const err = await failure(second)
    expect(err.name).toBe('StepCancelledError')
    await first
    expect(pool.stats().queued).toBe(0)
  })

  it('retires idle instances after idleMs, and beyond maxIdleInstances', async () => {
    const pool = make({ idleMs: 300 })
    await run(pool, TRIVIAL + ' // idle', ['v']).result
    expect(pool.stats().instances).toBe(1)
    for (let i = 0; i < 100 && pool.stats().instances > 0; i++) await sleep(50)
    expect(pool.stats().instances).toBe(0)

    const capped = make({ maxIdleInstances: 2 })
    for (const n of [1, 2, 3]) await run(capped, TRIVIAL + ` // cap ${n}`, ['v']).result
    for (let i = 0; i < 100 && capped.stats().instances > 2; i++) await sleep(20)
    expect(capped.stats()).toMatchObject({ instances: 2, idle: 2 })
  })

  it('stop() terminates busy, idle and starting workers and rejects queued invocations', async () => {
    const pool = make({ slots: 1 })
    await run(pool, TRIVIAL + ' // stop idle', ['v']).result
    void pool.prewarm(spec(TRIVIAL + ' // stop starting'))
    const busy = failure(run(pool, 'export default async () => { await new Promise(r => setTimeout(r, 60_000)) }', []).result)
    const queued = failure(run(pool, TRIVIAL + ' // stop queued', ['v']).result)
    await sleep(100)
    await pool.stop()
    expect(pool.stats().instances).toBe(0)
    expect((await busy).name).toBe('StepCancelledError')
    expect((await queued).name).toBe('PoolStoppedError')
    expect((await failure(run(pool, TRIVIAL, ['v']).result)).name).toBe('PoolStoppedError')
  })
})
