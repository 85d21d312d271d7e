import { afterEach, describe, expect, it, vi } from 'vitest'
import { getHeapSpaceStatistics } from 'node:v8'
import { exposeGc, IdleGc } from '../../node/util/idle-gc.ts'

const MiB = 2 ** 20

describe('IdleGc: one GC once the peer is quiet', () => {
  afterEach(() => { vi.useRealTimers() })

  it('runs the GC quietMs after the last arm(), not before; stop() cancels it', () => {
    vi.useFakeTimers()
    const gc = vi.fn()
    let newSpace = 16 * MiB
    const idle = new IdleGc({ quietMs: 1000, gc: () => { gc(); newSpace = 1 * MiB }, newSpaceBytes: () => newSpace })
    idle.arm()
    vi.advanceTimersByTime(900)
    idle.arm() // activity: wait again
    vi.advanceTimersByTime(900)
    expect(gc).not.toHaveBeenCalled()
    vi.advanceTimersByTime(200)
    expect(gc).toHaveBeenCalledTimes(1)
    // the new space shrank: no retry
    vi.advanceTimersByTime(60_000)
    expect(gc).toHaveBeenCalledTimes(1)
    newSpace = 16 * MiB
    idle.arm()
    idle.stop()
    vi.advanceTimersByTime(60_000)
    expect(gc).toHaveBeenCalledTimes(1)
  })

  it('tries again, waiting twice as long each time, while V8 keeps the new space large; skips when it is small', () => {
    vi.useFakeTimers()
    const gc = vi.fn()
    let newSpace = 16 * MiB
    const idle = new IdleGc({ quietMs: 1000, retries: 2, gc, newSpaceBytes: () => newSpace })
    idle.arm()
    vi.advanceTimersByTime(1000)
    expect(gc).toHaveBeenCalledTimes(1)
    vi.advanceTimersByTime(1999)
    expect(gc).toHaveBeenCalledTimes(1)
    vi.advanceTimersByTime(1)
    expect(gc).toHaveBeenCalledTimes(2)
    vi.advanceTimersByTime(4000)
    expect(gc).toHaveBeenCalledTimes(3)
    vi.advanceTimersByTime(100_000)
    expect(gc).toHaveBeenCalledTimes(3)
    newSpace = 1 * MiB
    idle.arm()
    vi.advanceTimersByTime(100_000)
    expect(gc).toHaveBeenCalledTimes(3)
    expect(idle.runs).toBe(3)
  })

  it('gets V8\'s gc() without --expose-gc, and a full GC after a quiet spell gives the young generation back', async () => {
    const gc = exposeGc()
    expect(typeof gc).toBe('function')
    // the flag is unset again: a context made now has no gc
    const { runInNewContext } = await import('node:vm')
    if (typeof (globalThis as { gc?: unknown }).gc !== 'function') expect(runInNewContext('typeof gc')).toBe('undefined')
    const newSpace = (): number => getHeapSpaceStatistics().find(s => s.space_name === 'new_space')?.space_size ?? 0
    let keep: object[] = []
    for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50_000) keep = [] }
    keep = []
    const grown = newSpace()
    // V8 shrinks the new space only when the allocation rate it measured over the last ~5 s is low
    await new Promise(resolve => setTimeout(resolve, 6000))
    gc?.()
    expect(newSpace()).toBeLessThan(grown)
    expect(newSpace()).toBeLessThanOrEqual(2 * MiB)
  }, 20_000)
})
