import { afterEach, describe, expect, it, vi } from 'vitest'
import { WorkLoopDelay } from '../../node/util/loop-delay.ts'

describe('WorkLoopDelay', () => {
  afterEach(() => { vi.useRealTimers() })

  it('samples only from work() until idleMs passed without work', () => {
    vi.useFakeTimers()
    const d = new WorkLoopDelay({ idleMs: 1000 })
    expect(d.active).toBe(false)
    d.work()
    expect(d.active).toBe(true)
    vi.advanceTimersByTime(600)
    d.work()
    vi.advanceTimersByTime(600)
    // the first check came 400 ms after the last work: still sampling
    expect(d.active).toBe(true)
    vi.advanceTimersByTime(1000)
    expect(d.active).toBe(false)
    d.work()
    expect(d.active).toBe(true)
    d.stop()
    expect(d.active).toBe(false)
    d.work()
    expect(d.active).toBe(false)
  })

  it('keeps sampling while busy() says there is work', () => {
    vi.useFakeTimers()
    let busy = true
    const d = new WorkLoopDelay({ idleMs: 1000, busy: () => busy })
    d.work()
    vi.advanceTimersByTime(5000)
    expect(d.active).toBe(true)
    busy = false
    vi.advanceTimersByTime(1000)
    expect(d.active).toBe(false)
    d.stop()
  })
})
