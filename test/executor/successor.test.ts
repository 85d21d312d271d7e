import { describe, it, expect } from 'vitest'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import { failure, run, spec, until, usePools } from './helpers.ts'

// every step sleeps `ms` (an input), logs that it ran, and fails when asked to
const CODE = `
export default async (ctx) => {
  const ms = await ctx.input('ms')
  console.log('ran ' + ctx.step.name)
  if (ms < 0) throw new Error(ctx.step.name + ' fails')
  await new Promise(r => setTimeout(r, ms))
  return { done: ctx.step.name }
}`

const step = (name: string) => ({ step: { name, index: null } })

describe.each(ISOLATIONS)('executor (%s isolation): an invocation waiting for a slot waits in a busy instance', (isolation) => {
  const make = usePools({ isolation })

  it('starts there the moment the running one returns, on its slot, with the inputs read for it (no second instance)', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // successor-basic')
    const p = run(pool, s, ['done'], { ...step('p'), inputs: { ms: 150 } })
    let preloads = 0
    const q = run(pool, s, ['done'], {
      ...step('q'),
      queueInInstance: true,
      // the value is read by the pool, not asked for by the function (which would throw here)
      input: async (name) => { throw new Error(`q asked the host for ${name}`) },
      preload: async () => { preloads++; return { ms: 10 } }
    })
    const [pr, qr] = await Promise.all([p.result, q.result])
    expect(qr.startedAt).toBeGreaterThanOrEqual(pr.endedAt)
    expect(q.rec.outputs).toEqual({ done: 'q' })
    expect(preloads).toBe(1)
    expect(pool.stats()).toMatchObject({ successorStarts: 1, chainedStarts: 0, instanceStarts: 1, busy: 0, queued: 0 })
    // the slot came back: another invocation runs at once
    await run(pool, s, ['done'], { ...step('r'), inputs: { ms: 1 } }).result
  })

  it('one whose predecessor fails runs anyway, on a slot of its own', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // successor-fail')
    const p = run(pool, s, ['done'], { ...step('p'), inputs: { ms: -1 } })
    const q = run(pool, s, ['done'], { ...step('q'), inputs: { ms: 5 }, queueInInstance: true })
    expect((await failure(p.result)).name).toBe('FunctionError')
    await q.result
    expect(q.rec.outputs).toEqual({ done: 'q' })
    expect(pool.stats()).toMatchObject({ successorStarts: 0, busy: 0, queued: 0 })
  })

  it('a slot freed elsewhere takes it back: it does not wait for a long predecessor', async () => {
    const pool = make({ slots: 2 })
    const s = spec(CODE + ' // successor-takeback')
    // p1 takes the first instance and runs long; p2 ends soon
    const p1 = run(pool, s, ['done'], { ...step('p1'), inputs: { ms: 2000 } })
    await new Promise(resolve => setTimeout(resolve, 50))
    const p2 = run(pool, s, ['done'], { ...step('p2'), inputs: { ms: 150 } })
    const q = run(pool, s, ['done'], { ...step('q'), inputs: { ms: 5 }, queueInInstance: true })
    const [p1r, p2r, qr] = await Promise.all([p1.result, p2.result, q.result])
    expect(qr.startedAt).toBeGreaterThanOrEqual(p2r.endedAt)
    expect(qr.endedAt).toBeLessThan(p1r.endedAt)
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0 })
  })

  it('keeps the queue\'s order: only its head waits in an instance', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // successor-order')
    const p = run(pool, s, ['done'], { ...step('p'), inputs: { ms: 150 }, startBy: 0 })
    // first, due earlier, cannot wait in an instance; second could, but is not the head
    const first = run(pool, s, ['done'], { ...step('first'), inputs: { ms: 50 }, startBy: 1 })
    const second = run(pool, s, ['done'], { ...step('second'), inputs: { ms: 5 }, startBy: 2, queueInInstance: true })
    const [pr, fr, sr] = await Promise.all([p.result, first.result, second.result])
    expect(fr.startedAt).toBeGreaterThanOrEqual(pr.endedAt)
    expect(sr.startedAt).toBeGreaterThanOrEqual(fr.endedAt)
    // once first ran, second was the head and waited in first's instance
    expect(pool.stats()).toMatchObject({ successorStarts: 1, instanceStarts: 1 })
  })

  it('a cancel while it waits in the instance: it never runs, and its slot is not lost', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // successor-cancel')
    // p runs until the test answers its input: no race with a cold start on a slow machine
    const release = Promise.withResolvers<number>()
    const p = run(pool, s, ['done'], { ...step('p'), input: async () => await release.promise })
    const ac = new AbortController()
    const q = run(pool, s, ['done'], { ...step('q'), inputs: { ms: 5 }, queueInInstance: true, signal: ac.signal })
    // it comes to wait in p's instance, not in the pool's queue
    await until(() => pool.stats().queued === 0 && pool.stats().busy === 1)
    ac.abort()
    expect((await failure(q.result)).name).toBe('StepCancelledError')
    release.resolve(1)
    await p.result
    expect(q.rec.logs).toEqual([])
    expect(pool.stats()).toMatchObject({ successorStarts: 0, busy: 0, queued: 0 })
    await run(pool, s, ['done'], { ...step('r'), inputs: { ms: 1 } }).result
  })
})
