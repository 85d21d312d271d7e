/**
 * The benchmark function: a stand-in for a real function that waits for its inputs, "works" for a given time,
 * and posts outputs of given sizes at a given point of its run. Generated benchmark workflows
 * (functions/benchmarks/) are made of these.
 *
 * Work is a sleep (setTimeout bound to ctx.signal), not a CPU busy loop: the bench runs 4 peers with several
 * function slots each on 2 cores, and busy loops would make the CPU the bottleneck and measure the scheduler of
 * the OS instead of the workflow engine. A sleep still holds the function's slot for runtimeMs, which is what
 * the comparison of dataflow and control flow is about. (Start cost at module load is different: see initWork.)
 */
import type { StepContext } from 'dflow'

/** JSON-like constant value of an output (a switch decision, a `done` marker). */
export type Constant = null | boolean | number | string | Constant[] | { [key: string]: Constant }

export interface SyntheticSpec {
  /** time from "all inputs present" to return */
  runtimeMs: number
  /** value outputs: name -> size in bytes of the pseudo-random Uint8Array posted */
  outputs: Record<string, number>
  /**
   * fraction of runtimeMs after which outputs are posted (ctx.output); 1 = at return
   * @default 1
   */
  postAt?: number
  /** input parameters to await before the work starts (all of them, in parallel) */
  inputs?: string[]
  /**
   * stream outputs: name -> element count and bytes per element. Element i is emitted at
   * postAt * runtimeMs * (i + 1) / count, so foreach consumers start while this step still runs.
   */
  streams?: Record<string, { count: number, size: number }>
  /** outputs with fixed values, posted with the others (e.g. a switch step's `branch`) */
  constants?: Record<string, Constant>
  /**
   * an input whose value (JSON-stringified) is mixed into the byte seed, so requests that pass different values
   * get different CIDs; without it the bytes depend only on step name, foreach index and output name.
   */
  seedInput?: string
  /**
   * bytes the step makes itself when it starts, within its runtime: the input files of an imported trace that
   * no step produces (stage-in files), so the workflow needs no inputs
   */
  stageInBytes?: number
}

export class SyntheticSpecError extends Error {
  static readonly NAME = 'SyntheticSpecError'
  constructor (message: string) {
    super(message)
    this.name = SyntheticSpecError.NAME
  }
}

/** FNV-1a 32-bit hash of a string: the PRNG seed. */
export function hashSeed (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h === 0 ? 0x9e3779b9 : h
}

/** Deterministic pseudo-random bytes (xorshift32): the same seed and size always give the same bytes. */
export function pseudoRandomBytes (seed: string, size: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4))
  let x = hashSeed(seed)
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    words[i] = x
  }
  return new Uint8Array(words.buffer, 0, size)
}

/**
 * A platform's start cost (initMs), as the generated modules pay it: a top-level `await initWait(ms)`, so the
 * module's import, and so the instance's start, takes ms longer, without using the CPU. A container's start is
 * mostly waiting (image layers, runtime boot, network setup) and happens on the platform's cores, not on those
 * running the workflow's other functions. The busy-wait the modules used before (initWork) made every
 * pre-warmed instance take 500 ms of one of this machine's 2 cores, so the cold-start runs measured CPU
 * contention between starts and running steps rather than start latency hidden or paid.
 */
export async function initWait (ms: number): Promise<void> {
  if (ms > 0) await new Promise(resolve => setTimeout(resolve, ms))
}

/** Busy-waits ms milliseconds: a start cost that takes CPU (not used by the generated modules; see initWait). */
export function initWork (ms: number): void {
  const end = Date.now() + ms
  while (Date.now() < end) { /* start cost */ }
}

/** how much earlier than the deadline the timer is set: Node's timers fire about a millisecond late */
const TIMER_SLACK_MS = 1.5
const waitCell = new Int32Array(new SharedArrayBuffer(4))

/**
 * Sleeps until `deadline` (performance.now() time). A timer alone ends a 10 ms sleep at about 11 ms (timers fire
 * late, on a millisecond clock), which made every benchmark step 10% longer than the same step sleeping in Python
 * on the Dask yardstick. So the timer is set TIMER_SLACK_MS early and the rest (under TIMER_SLACK_MS; nothing
 * when the timer was late anyway) is a blocking wait (Atomics.wait: the thread sleeps, it does not spin).
 */
function sleepUntil (deadline: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(signal.reason ?? new Error('aborted')); return }
    const finish = (): void => {
      const rest = deadline - performance.now()
      if (rest > 0) Atomics.wait(waitCell, 0, 0, rest)
      resolve()
    }
    const ms = deadline - performance.now() - TIMER_SLACK_MS
    // a deadline (nearly) reached costs no timer turn (setTimeout(0) is 1 ms: 10% of a 10 ms step)
    if (ms <= 0) { finish(); return }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason ?? new Error('aborted'))
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      finish()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function check (spec: SyntheticSpec): void {
  const bad = (what: string): never => { throw new SyntheticSpecError(`synthetic: ${what}`) }
  if (!Number.isFinite(spec.runtimeMs) || spec.runtimeMs < 0) bad(`runtimeMs must be a number >= 0, got ${spec.runtimeMs}`)
  const postAt = spec.postAt ?? 1
  if (!Number.isFinite(postAt) || postAt < 0 || postAt > 1) bad(`postAt must be in 0..1, got ${postAt}`)
  if (spec.stageInBytes !== undefined && (!Number.isInteger(spec.stageInBytes) || spec.stageInBytes < 0)) bad(`stageInBytes must be an integer >= 0, got ${spec.stageInBytes}`)
  for (const [n, s] of Object.entries(spec.outputs)) if (!Number.isInteger(s) || s < 0) bad(`output ${n}: size must be an integer >= 0, got ${s}`)
  for (const [n, s] of Object.entries(spec.streams ?? {})) {
    if (!Number.isInteger(s.count) || s.count < 0 || !Number.isInteger(s.size) || s.size < 0) bad(`stream ${n}: count and size must be integers >= 0`)
  }
}

/** Builds the step function described by spec. */
export function synthetic (spec: SyntheticSpec): (ctx: StepContext) => Promise<void> {
  check(spec)
  const postAt = spec.postAt ?? 1
  return async function syntheticStep (ctx: StepContext): Promise<void> {
    const names = spec.inputs ?? []
    const values = await Promise.all(names.map(async n => await ctx.input<unknown>(n)))
    const start = performance.now()
    const salt = spec.seedInput != null && names.includes(spec.seedInput)
      ? JSON.stringify(values[names.indexOf(spec.seedInput)] ?? null)
      : ''
    const seedOf = (output: string, element = ''): string =>
      `${salt}/${ctx.step.name}/${ctx.step.index ?? ''}/${output}/${element}`

    if (spec.stageInBytes !== undefined && spec.stageInBytes > 0) pseudoRandomBytes(seedOf('stage-in'), spec.stageInBytes)
    const postTime = start + postAt * spec.runtimeMs
    // stream elements, spread evenly up to the post time
    for (const [name, s] of Object.entries(spec.streams ?? {})) {
      for (let i = 0; i < s.count; i++) {
        await sleepUntil(start + postAt * spec.runtimeMs * (i + 1) / s.count, ctx.signal)
        ctx.emit(name, pseudoRandomBytes(seedOf(name, String(i)), s.size))
      }
      if (s.count === 0) ctx.output(name, [])
    }
    await sleepUntil(postTime, ctx.signal)
    for (const [name, size] of Object.entries(spec.outputs)) ctx.output(name, pseudoRandomBytes(seedOf(name), size))
    for (const [name, value] of Object.entries(spec.constants ?? {})) ctx.output(name, value)
    await sleepUntil(start + spec.runtimeMs, ctx.signal)
  }
}

export default synthetic
