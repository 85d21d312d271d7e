import { afterEach, describe, expect, it, vi } from 'vitest'
import { getHeapSpaceStatistics } from 'node:v8'
import { exposeGc, IdleGc, type GcFunction } from '../../node/util/idle-gc.ts'

const MiB = 2 ** 20

describe('IdleGc: one GC once the peer is quiet', () => {
  afterEach(() => { vi.useRealTimers() })

  /** a fake V8 new space: `alloc` bytes are allocated per ms of fake time; gc() empties it, a full one may shrink it */
  function fakeHeap (opts: { shrinks: boolean }): { heap: { size: number, used: number, alloc: number, old: number, scavenges: number }, gc: ReturnType<typeof vi.fn>, idle: IdleGc } {
    const heap = { size: 16 * MiB, used: 0, alloc: 0, old: 20 * MiB, scavenges: 0 }
    let last = 0
    const now = (): number => Date.now()
    const newSpace = (): { size: number, used: number } => {
      const t = now()
      heap.used += heap.alloc * (t - last)
      last = t
      // scavenges (nothing survives)
      if (heap.used > heap.size / 2) { heap.scavenges += Math.floor(heap.used / (heap.size / 2)); heap.used %= heap.size / 2 }
      return { size: heap.size, used: heap.used }
    }
    const gc = vi.fn((o?: { type: 'minor' | 'major' }) => { heap.used = 0; heap.scavenges++; if (o?.type !== 'minor' && opts.shrinks) heap.size = 1 * MiB })
    const idle = new IdleGc({ pollMs: 1000, maxPolls: 20, quietBytesPerMs: 500, maxRuns: 2, gc, newSpace, now, oldUsed: () => heap.old, oldGrowthBytes: 4 * MiB, scavenges: () => heap.scavenges, random: () => 0.5 })
    return { heap, gc, idle }
  }

  it('in a quiet spell after arm() (not while the peer allocates): a scavenge, then a full GC; nothing more once it shrank', () => {
    vi.useFakeTimers()
    const { heap, gc, idle } = fakeHeap({ shrinks: true })
    heap.alloc = 2000 // busy (2 KB/ms)
    idle.arm()
    vi.advanceTimersByTime(5000)
    expect(gc).not.toHaveBeenCalled()
    heap.alloc = 100 // quiet
    vi.advanceTimersByTime(1000)
    expect(gc).not.toHaveBeenCalled() // one quiet spell is not enough
    vi.advanceTimersByTime(1000)
    expect(gc).toHaveBeenCalledTimes(1)
    expect(gc).toHaveBeenLastCalledWith({ type: 'minor' })
    vi.advanceTimersByTime(4000)
    expect(gc).toHaveBeenCalledTimes(1) // V8 must see 5 s of quiet since the scavenge
    vi.advanceTimersByTime(1000)
    expect(gc).toHaveBeenCalledTimes(2)
    expect(gc).toHaveBeenLastCalledWith(undefined)
    expect(heap.size).toBe(1 * MiB)
    vi.advanceTimersByTime(60_000)
    expect(gc).toHaveBeenCalledTimes(2)
    // small new space: an arm() looks, but finds nothing to give back
    idle.arm()
    vi.advanceTimersByTime(60_000)
    expect(gc).toHaveBeenCalledTimes(2)
    expect(idle.runs).toBe(1)
    idle.stop()
  })

  it('with a small new space, collects when the old generation grew since its last full GC', () => {
    vi.useFakeTimers()
    const { heap, gc, idle } = fakeHeap({ shrinks: true })
    heap.alloc = 100
    idle.arm()
    vi.advanceTimersByTime(10_000)
    expect(gc.mock.calls).toEqual([[{ type: 'minor' }], [undefined]])
    expect(heap.size).toBe(1 * MiB)
    // a burst promoted 3 MiB of garbage (under oldGrowthBytes): nothing
    heap.old += 3 * MiB
    idle.arm()
    vi.advanceTimersByTime(15_000)
    expect(gc).toHaveBeenCalledTimes(2)
    // 5 MiB: a full GC (the new space is small already: no scavenge first), in a quiet spell only
    heap.old += 2 * MiB
    heap.alloc = 2000
    idle.arm()
    vi.advanceTimersByTime(5000)
    expect(gc).toHaveBeenCalledTimes(2)
    heap.alloc = 100
    vi.advanceTimersByTime(6000)
    expect(gc.mock.calls.slice(2)).toEqual([[undefined]])
    expect(idle.runs).toBe(2)
    idle.stop()
  })

  it('a look after a scavenge still measures the rate: a small new space that fills every few seconds at rest is quiet', () => {
    vi.useFakeTimers()
    const { heap, gc, idle } = fakeHeap({ shrinks: true })
    heap.size = 1 * MiB // 512 KiB to fill: at 300 B/ms, a scavenge every 1.7 s, so between most looks
    heap.old = 30 * MiB
    heap.alloc = 300
    idle.arm()
    vi.advanceTimersByTime(2000)
    expect(gc).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1000)
    // the new space is small already: the full GC at once, no scavenge first
    expect(gc.mock.calls).toEqual([[undefined]])
    // busy (a scavenge between looks at 1 KB/ms too): never
    idle.stop()
    gc.mockClear()
    heap.old += 10 * MiB
    heap.alloc = 1000
    idle.arm()
    vi.advanceTimersByTime(20_000)
    expect(gc).not.toHaveBeenCalled()
    idle.stop()
  })

  it('calls afterGc (malloc_trim) afterGcDelayMs after each full GC, not after a scavenge; stop() cancels it', () => {
    vi.useFakeTimers()
    const { heap, gc } = fakeHeap({ shrinks: true })
    const afterGc = vi.fn()
    const newSpace = (): { size: number, used: number } => ({ size: heap.size, used: heap.used })
    const idle = new IdleGc({ pollMs: 1000, maxPolls: 20, quietBytesPerMs: 500, maxRuns: 2, gc: gc as unknown as GcFunction, newSpace, now: () => Date.now(), oldUsed: () => heap.old, scavenges: () => heap.scavenges, random: () => 0.5, afterGc, afterGcDelayMs: 1000 })
    idle.arm()
    vi.advanceTimersByTime(3000)
    expect(gc).toHaveBeenLastCalledWith({ type: 'minor' })
    vi.advanceTimersByTime(4000)
    expect(gc).toHaveBeenCalledTimes(1)
    expect(afterGc).not.toHaveBeenCalled() // a scavenge frees nothing malloc holds
    vi.advanceTimersByTime(1000)
    expect(gc).toHaveBeenLastCalledWith(undefined)
    expect(afterGc).not.toHaveBeenCalled() // not in the same tick: V8 sweeps on background threads first
    vi.advanceTimersByTime(999)
    expect(afterGc).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    expect(afterGc).toHaveBeenCalledTimes(1)
    // another full GC (the old generation grew), then stop() before its delay ran out
    heap.old += 8 * MiB
    idle.arm()
    vi.advanceTimersByTime(3000)
    expect(idle.runs).toBe(2)
    expect(afterGc).toHaveBeenCalledTimes(1)
    idle.stop()
    vi.advanceTimersByTime(5000)
    expect(afterGc).toHaveBeenCalledTimes(1)
  })

  it('gives up after maxPolls and maxRuns; stop() cancels; arm() looks again', () => {
    vi.useFakeTimers()
    const { heap, gc, idle } = fakeHeap({ shrinks: false })
    heap.alloc = 2000
    idle.arm()
    vi.advanceTimersByTime(60_000)
    expect(gc).not.toHaveBeenCalled()
    heap.alloc = 0
    vi.advanceTimersByTime(60_000)
    expect(gc).not.toHaveBeenCalled() // gave up after 20 looks
    idle.arm()
    vi.advanceTimersByTime(60_000)
    // a scavenge, then full GCs that V8 (here) does not let shrink anything, up to maxRuns
    expect(gc.mock.calls).toEqual([[{ type: 'minor' }], [undefined], [undefined]])
    idle.arm()
    vi.advanceTimersByTime(1500)
    idle.stop()
    vi.advanceTimersByTime(60_000)
    expect(gc).toHaveBeenCalledTimes(3)
    expect(idle.runs).toBe(2)
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
    expect(grown).toBeGreaterThan(2 * MiB)
    // V8 shrinks the new space only when the allocation rate it measured over its last seconds is low (IdleGc
    // tries again when a GC did not shrink it, as here)
    for (let i = 0; i < 3 && newSpace() > 2 * MiB; i++) {
      await new Promise(resolve => setTimeout(resolve, 6000))
      gc?.()
    }
    expect(newSpace()).toBeLessThan(grown)
    expect(newSpace()).toBeLessThanOrEqual(2 * MiB)
  }, 40_000)
})
