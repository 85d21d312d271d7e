import { describe, expect, it } from 'vitest'
import { fakeContext } from './fake-context.ts'
import { synthetic, pseudoRandomBytes, initWork, initWait, hashSeed } from '../../functions/synthetic/synthetic.ts'

describe('synthetic', () => {
  it('posts its outputs at postAt * runtimeMs, before it returns, with bytes of the given sizes', async () => {
    const fn = synthetic({ runtimeMs: 2000, postAt: 0.1, inputs: ['x'], outputs: { a: 1000, b: 3 }, constants: { branch: 'left' } })
    const f = fakeContext({ x: 1 }, { step: 'work' })
    let returned = false
    const done = f.run(fn).finally(() => { returned = true })
    // midway (1 s margin either side): everything is posted, and the function is still running
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(f.posted).toHaveLength(3)
    expect(returned).toBe(false)
    const out = await done
    const returnedAt = Date.now() - f.t0
    expect(f.posted.map(p => p.name)).toEqual(['a', 'b', 'branch'])
    for (const p of f.posted) expect(p.at).toBeGreaterThanOrEqual(195) // never early; late only under load
    expect(returnedAt).toBeGreaterThanOrEqual(1995)
    expect((out.a as Uint8Array).length).toBe(1000)
    expect((out.b as Uint8Array).length).toBe(3)
    expect(out.branch).toBe('left')
  })

  it('never returns before its runtime, measured on the monotonic clock (the timer is set early, the rest is a blocking wait)', async () => {
    for (const runtimeMs of [0.5, 1, 2, 10, 10, 10, 25]) {
      const f = fakeContext({}, { step: 'w' })
      const t0 = performance.now()
      await f.run(synthetic({ runtimeMs, outputs: {} }))
      expect(performance.now() - t0).toBeGreaterThanOrEqual(runtimeMs)
    }
  })

  it('posts at return by default (postAt 1)', async () => {
    const f = fakeContext({}, { step: 'w' })
    await f.run(synthetic({ runtimeMs: 120, outputs: { a: 8 } }))
    expect(f.posted[0].at).toBeGreaterThanOrEqual(115)
  })

  it('waits for all declared inputs before the work starts', async () => {
    let release!: () => void
    const late = new Promise<void>(resolve => { release = resolve })
    const f = fakeContext({})
    f.ctx.input = async <T>(name: string): Promise<T> => {
      if (name === 'slow') await late
      return 1 as T
    }
    const fn = synthetic({ runtimeMs: 50, postAt: 0, inputs: ['fast', 'slow'], outputs: { a: 8 } })
    const running = f.run(fn)
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(f.posted).toHaveLength(0)
    release()
    await running
    expect(f.posted).toHaveLength(1)
  })

  it('gives the same bytes for the same step, index, output and seed input, and different bytes otherwise', async () => {
    const spec = { runtimeMs: 0, inputs: ['seed'], seedInput: 'seed', outputs: { data: 4096 } }
    const run = async (step: string, seed: unknown, index: number | null = null): Promise<Uint8Array> =>
      (await fakeContext({ seed }, { step, index }).run(synthetic(spec))).data as Uint8Array
    const a = await run('s1', 7)
    expect(a).toEqual(await run('s1', 7))
    expect(a).not.toEqual(await run('s2', 7))
    expect(a).not.toEqual(await run('s1', 8))
    expect(a).not.toEqual(await run('s1', 7, 0))
    expect(new Set(a).size).toBeGreaterThan(200) // looks random, not a constant fill
    expect(pseudoRandomBytes('x', 5)).toEqual(pseudoRandomBytes('x', 9).subarray(0, 5))
    expect(hashSeed('a')).not.toBe(hashSeed('b'))
  })

  it('emits stream elements spread over the run, so consumers can start early', async () => {
    const f = fakeContext({}, { step: 'split' })
    const out = await f.run(synthetic({ runtimeMs: 300, outputs: { keys: 8 }, streams: { parts: { count: 3, size: 100 } } }))
    expect(out.parts).toHaveLength(3)
    for (const p of out.parts as Uint8Array[]) expect(p.length).toBe(100)
    const emits = f.posted.filter(p => p.name === 'parts')
    expect(emits.map(p => p.index)).toEqual([0, 1, 2])
    expect(emits[0].at).toBeGreaterThanOrEqual(95)
    expect(emits[2].at).toBeGreaterThanOrEqual(295)
    expect(new Set((out.parts as Uint8Array[]).map(p => p.join())).size).toBe(3)
  })

  it('an empty stream is an empty list', async () => {
    const out = await fakeContext({}).run(synthetic({ runtimeMs: 0, outputs: {}, streams: { parts: { count: 0, size: 1 } } }))
    expect(out.parts).toEqual([])
  })

  it('stops when ctx.signal aborts', async () => {
    const ac = new AbortController()
    const f = fakeContext({}, { signal: ac.signal })
    const started = Date.now()
    const running = f.run(synthetic({ runtimeMs: 30_000, outputs: { a: 8 } }))
    setTimeout(() => { ac.abort(new Error('cancelled')) }, 50)
    await expect(running).rejects.toThrow('cancelled')
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(f.posted).toHaveLength(0)
  })

  it('rejects a bad spec with a named error', () => {
    expect(() => synthetic({ runtimeMs: -1, outputs: {} })).toThrow(expect.objectContaining({ name: 'SyntheticSpecError' }))
    expect(() => synthetic({ runtimeMs: 1, postAt: 2, outputs: {} })).toThrow(expect.objectContaining({ name: 'SyntheticSpecError' }))
    expect(() => synthetic({ runtimeMs: 1, outputs: { a: 1.5 } })).toThrow(expect.objectContaining({ name: 'SyntheticSpecError' }))
  })

  it('initWait takes the time it is given without using the CPU (a start cost that waits)', async () => {
    const t = Date.now()
    const cpu = process.cpuUsage()
    await initWait(150)
    const used = process.cpuUsage(cpu)
    expect(Date.now() - t).toBeGreaterThanOrEqual(149)
    // a busy-wait would use ~150 ms of CPU here
    expect((used.user + used.system) / 1000).toBeLessThan(75)
  })

  it('initWork costs the time it is given', () => {
    const t = Date.now()
    initWork(60)
    expect(Date.now() - t).toBeGreaterThanOrEqual(60)
  })
})
