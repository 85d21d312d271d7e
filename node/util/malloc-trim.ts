import { createRequire } from 'node:module'

/**
 * glibc's malloc_trim(0), called once a peer is at rest (after IdleGc's full GC). Why: after a burst, the main
 * arena of glibc's malloc is full of 8-64 KiB holes (socket buffers, Buffer pool slabs, V8's off-heap bits freed
 * out of order) under a few live chunks near its top, and glibc only gives memory back from the top of the heap
 * (M_TRIM_THRESHOLD). malloc_trim walks every arena and madvise(MADV_DONTNEED)s each free page inside it: it is
 * the only call that returns those holes, and Node does not offer it. bench:soak measured RSS at rest after 1000
 * requests / after 100 of 1.05-1.19 without it and 1.03-1.09 with it (docs/benchmarks/soak.md), for 2-16 ms of
 * CPU per call, once per quiet spell.
 *
 * The call goes through koffi (a prebuilt FFI, no compiler on the machine). Where glibc or koffi is missing
 * (musl, another OS, a failed load), trim() warns once and does nothing: a peer never fails for it.
 * DFLOW_NO_MALLOC_TRIM=1 turns it off (A/B runs).
 */
export type TrimFunction = (pad: number) => number

export interface MallocTrimOptions {
  /** for tests; by default glibc's malloc_trim through koffi, or undefined where it cannot be loaded */
  load?: () => TrimFunction | undefined
  /** for tests; by default the process's resident set size */
  rss?: () => number
  /** the one warning when it cannot be loaded, and a debug line per call */
  log?: (format: string, ...args: unknown[]) => void
  warn?: (message: string) => void
}

export class MallocTrim {
  private fn: TrimFunction | undefined | null = null
  private readonly opts: Required<MallocTrimOptions>
  /** calls made (the peer's dflow_malloc_trim_runs_total) */
  runs = 0
  /** RSS before minus RSS after, summed over the calls that lowered it (dflow_malloc_trim_released_bytes_total) */
  releasedBytes = 0
  /** CPU time (user + system) the calls took (dflow_malloc_trim_cpu_seconds_total) */
  cpuSeconds = 0

  constructor (opts: MallocTrimOptions = {}) {
    this.opts = {
      load: opts.load ?? loadGlibcTrim,
      rss: opts.rss ?? (() => process.memoryUsage.rss()),
      log: opts.log ?? (() => {}),
      warn: opts.warn ?? (message => { process.emitWarning(message, { code: 'DFLOW_MALLOC_TRIM' }) })
    }
  }

  /** whether malloc_trim can be called here (loads it on the first call) */
  get available (): boolean {
    return this.resolve() !== undefined
  }

  /** Returns the bytes of RSS it gave back (0 where it is not available). */
  trim (): number {
    const fn = this.resolve()
    if (fn === undefined) return 0
    const before = this.opts.rss()
    const cpu = process.cpuUsage()
    fn(0)
    const spent = process.cpuUsage(cpu)
    const released = Math.max(0, before - this.opts.rss())
    this.runs++
    this.releasedBytes += released
    this.cpuSeconds += (spent.user + spent.system) / 1e6
    this.opts.log('malloc_trim gave back %d KiB in %s ms of CPU', Math.round(released / 1024), ((spent.user + spent.system) / 1000).toFixed(1))
    return released
  }

  private resolve (): TrimFunction | undefined {
    if (this.fn !== null) return this.fn
    try {
      this.fn = this.opts.load()
    } catch (err) {
      this.fn = undefined
      this.opts.warn(`malloc_trim unavailable (${(err as Error).message}): memory freed at rest stays with the process`)
      return undefined
    }
    if (this.fn === undefined) this.opts.warn('malloc_trim unavailable (not glibc): memory freed at rest stays with the process')
    return this.fn
  }
}

/** glibc's malloc_trim via koffi; undefined on a libc that is not glibc. Throws when koffi or libc cannot load. */
export function loadGlibcTrim (): TrimFunction | undefined {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  if (process.platform !== 'linux' || header?.glibcVersionRuntime === undefined) return undefined
  // koffi is CommonJS with a native addon found next to its own files: required, and left out of the testnet bundle
  const koffi = createRequire(import.meta.url)('koffi') as { load: (lib: string) => { func: (sig: string) => TrimFunction } }
  return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)')
}
