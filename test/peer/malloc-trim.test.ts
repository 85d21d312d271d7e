import { describe, expect, it, vi } from 'vitest'
import { loadGlibcTrim, MallocTrim } from '../../node/util/malloc-trim.ts'

describe('MallocTrim: glibc free pages back to the kernel at rest', () => {
  it('loads glibc\'s malloc_trim on this machine (Linux, glibc) and calls it', () => {
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
    const fn = loadGlibcTrim()
    if (glibc === undefined) {
      expect(fn).toBeUndefined()
      return
    }
    expect(typeof fn).toBe('function')
    // malloc_trim returns 1 when memory was released, 0 otherwise
    expect([0, 1]).toContain(fn?.(0))
    const trim = new MallocTrim({ warn: () => { throw new Error('no warning expected here') } })
    expect(trim.available).toBe(true)
    expect(trim.trim()).toBeGreaterThanOrEqual(0)
    expect(trim.runs).toBe(1)
    expect(trim.cpuSeconds).toBeGreaterThanOrEqual(0)
  })

  it('counts calls and the RSS each gave back (never a negative release)', () => {
    const rss = [100, 60, 60, 70]
    const fn = vi.fn(() => 1)
    const trim = new MallocTrim({ load: () => fn, rss: () => rss.shift() ?? 0 })
    expect(trim.trim()).toBe(40)
    expect(trim.trim()).toBe(0) // RSS grew during the call: 0, not -10
    expect(fn).toHaveBeenCalledTimes(2)
    expect(fn).toHaveBeenCalledWith(0)
    expect(trim.runs).toBe(2)
    expect(trim.releasedBytes).toBe(40)
  })

  it('where it cannot load (no koffi, not glibc): warns once, then does nothing, and never throws', () => {
    const warn = vi.fn()
    const broken = new MallocTrim({ load: () => { throw new Error('cannot find module koffi') }, warn })
    expect(broken.trim()).toBe(0)
    expect(broken.trim()).toBe(0)
    expect(broken.available).toBe(false)
    expect(broken.runs).toBe(0)
    expect(warn).toHaveBeenCalledTimes(1)
    expect(warn.mock.calls[0][0]).toMatch(/malloc_trim unavailable \(cannot find module koffi\)/)

    const musl = vi.fn()
    const notGlibc = new MallocTrim({ load: () => undefined, warn: musl })
    expect(notGlibc.trim()).toBe(0)
    expect(notGlibc.trim()).toBe(0)
    expect(musl).toHaveBeenCalledTimes(1)
    expect(musl.mock.calls[0][0]).toMatch(/not glibc/)
  })
})
