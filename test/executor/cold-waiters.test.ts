import { describe, it, expect } from 'vitest'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { run, spec, until, usePools } from './helpers.ts'
import type { Value } from '../../node/values/codec.ts'

// every instance takes LOAD_MS to load its module: far longer than anything else the test waits for
const LOAD_MS = 1500
const CODE = `await new Promise(r => setTimeout(r, ${LOAD_MS}))
export default async (ctx) => { await ctx.input('go'); return { v: ctx.step.name } }`

describe.each(ISOLATIONS)('executor (%s isolation): an invocation meeting a cold start', (isolation) => {
  const make = usePools({ isolation })

  it('runs on a warm instance of its module that comes idle before the new one has loaded; the new one is kept idle', async () => {
    const pool = make({ slots: 4 })
    const s = spec(CODE)
    await pool.prewarm(s)
    // a holds the only warm instance until the test answers its input
    const gate = Promise.withResolvers<Value>()
    const a = run(pool, s, ['v'], { step: { name: 'a', index: null }, input: async () => await gate.promise })
    await until(() => pool.stats().busy === 1)
    // b finds no idle instance: one starts loading for it
    const b = run(pool, s, ['v'], { step: { name: 'b', index: null }, inputs: { go: 1 } })
    await until(() => pool.stats().instances === 2)
    gate.resolve(1)
    const [ra, rb] = await Promise.all([a.result, b.result])
    expect(a.rec.outputs).toEqual({ v: 'a' })
    expect(b.rec.outputs).toEqual({ v: 'b' })
    // b ran on a's instance, right after it: no cold start (waiting for the new one would have been ~LOAD_MS)
    expect(rb.coldStartMs).toBe(0)
    expect(rb.startedAt).toBeGreaterThanOrEqual(ra.endedAt)
    expect(pool.stats()).toMatchObject({ coldStarts: 0, warmStarts: 2 })
    // the instance started for b is not wasted: it becomes idle once loaded, and the next invocation finds it
    await until(() => pool.stats().idle === 2)
    const c = run(pool, s, ['v'], { step: { name: 'c', index: null }, inputs: { go: 1 } })
    const d = run(pool, s, ['v'], { step: { name: 'd', index: null }, inputs: { go: 1 } })
    const [rc, rd] = await Promise.all([c.result, d.result])
    expect([rc.coldStartMs, rd.coldStartMs]).toEqual([0, 0])
    expect(pool.stats()).toMatchObject({ instances: 2, coldStarts: 0, warmStarts: 4 })
  })

  it('a cold start that finishes first is used as before, and a later idle instance is not taken from anyone', async () => {
    const pool = make({ slots: 4 })
    const s = spec(CODE + ' // first')
    await pool.prewarm(s)
    const gate = Promise.withResolvers<Value>()
    const a = run(pool, s, ['v'], { step: { name: 'a', index: null }, input: async () => await gate.promise })
    await until(() => pool.stats().busy === 1)
    const b = await run(pool, s, ['v'], { step: { name: 'b', index: null }, inputs: { go: 1 } }).result
    expect(b.coldStartMs).toBeGreaterThan(0)
    gate.resolve(1)
    await a.result
    expect(pool.stats()).toMatchObject({ instances: 2, idle: 2, busy: 0, coldStarts: 1, warmStarts: 1 })
  })
})
