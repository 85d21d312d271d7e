/** `dflow bench` flags -> BenchOptions (throws BenchUsageError with the flag's name). */
import { BenchUsageError, parseWorkflowList } from './workflows.ts'
import { MODES, type BenchMode, type BenchOptions } from './types.ts'
import { parseDuration } from '../../node/config.ts'
import { MODULE_LAYOUTS, type ModuleLayout } from '../../functions/benchmarks/generate.ts'

export interface BenchCliFlags {
  peers: string
  workflows: string
  modes: string
  requests: string
  warmup: string
  rate?: string
  seed: string
  linkRate?: string
  dir?: string
  timeScale: string
  sizeScale: string
  initMs: string
  postAt: string
  slots: string
  replicas: string
  requestTimeout: string
  idleInstance?: string
  stemCells?: string
  modules?: string
  /** commander's `--no-shared-store`: false when given */
  sharedStore?: boolean
  yardstick?: string
}

function number (flag: string, text: string, opts: { integer?: boolean, min?: number, max?: number } = {}): number {
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || (opts.integer === true && !Number.isInteger(n)) || n < (opts.min ?? 0) || n > (opts.max ?? Infinity)) {
    throw new BenchUsageError(`--${flag} ${JSON.stringify(text)}: expected ${opts.integer === true ? 'an integer' : 'a number'} >= ${opts.min ?? 0}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`)
  }
  return n
}

const RATE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 2 ** 20, gib: 2 ** 30, bit: 1 / 8, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8 }

/** "50MB/s", "50MiB/s", "400mbit", "1000000" (bytes/s) -> bytes per second. */
export function parseLinkRate (text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*?)(?:\/s|ps)?$/i.exec(text.trim())
  const unit = m?.[2].toLowerCase() ?? ''
  const factor = unit === '' ? 1 : RATE_UNITS[unit]
  if (m === null || factor === undefined || Number(m[1]) <= 0) {
    throw new BenchUsageError(`--link-rate ${JSON.stringify(text)}: expected a rate like 50MB/s, 50MiB/s or 400mbit`)
  }
  return Math.round(Number(m[1]) * factor)
}

/** The `dflow peer` flags a bench passes to every peer it starts (besides slots and replicas). */
export function peerFlags (opts: Pick<BenchOptions, 'idleInstance' | 'sharedStore' | 'stemCells'>): string[] {
  return [
    ...(opts.idleInstance !== undefined ? ['--idle-instance', opts.idleInstance] : []),
    ...(opts.stemCells !== undefined ? ['--stem-cells', String(opts.stemCells)] : []),
    ...(opts.sharedStore === false ? ['--no-shared-store'] : [])
  ]
}

export function parseBenchOptions (f: BenchCliFlags): BenchOptions {
  const modes = f.modes.split(',').map(s => s.trim()).filter(s => s !== '')
  for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new BenchUsageError(`--modes: unknown mode "${m}" (dataflow, control, central)`)
  if (modes.length === 0) throw new BenchUsageError('--modes: no mode named')
  if (f.yardstick !== undefined && f.yardstick !== 'dask') throw new BenchUsageError(`--yardstick: unknown engine "${f.yardstick}" (dask)`)
  if (f.idleInstance !== undefined) {
    let ms = NaN
    try { ms = parseDuration(f.idleInstance, '--idle-instance') } catch (err) { throw new BenchUsageError((err as Error).message) }
    if (!(ms > 0)) throw new BenchUsageError(`--idle-instance ${JSON.stringify(f.idleInstance)}: expected a duration > 0 like 2s or 500ms`)
  }
  const modules = (f.modules ?? 'per-workflow').split(',').map(s => s.trim()).filter(s => s !== '')
  for (const m of modules) if (!(MODULE_LAYOUTS as readonly string[]).includes(m)) throw new BenchUsageError(`--modules: unknown layout "${m}" (${MODULE_LAYOUTS.join(', ')})`)
  if (modules.length === 0) throw new BenchUsageError('--modules: no layout named')
  const postAt = f.postAt.split(',').map(s => number('post-at', s.trim(), { max: 1 }))
  return {
    peers: number('peers', f.peers, { integer: true, min: 1 }),
    workflows: parseWorkflowList(f.workflows),
    modes: [...new Set(modes)] as BenchMode[],
    requests: number('requests', f.requests, { integer: true, min: 1 }),
    warmup: number('warmup', f.warmup, { integer: true }),
    ...(f.rate !== undefined ? { ratePerMin: number('rate', f.rate, { min: 0.001 }) } : {}),
    seed: number('seed', f.seed, { integer: true }),
    ...(f.linkRate !== undefined ? { linkRate: parseLinkRate(f.linkRate) } : {}),
    ...(f.dir !== undefined ? { dir: f.dir } : {}),
    timeScale: number('time-scale', f.timeScale),
    sizeScale: number('size-scale', f.sizeScale),
    initMs: number('init-ms', f.initMs, { integer: true }),
    postAt: [...new Set(postAt)],
    slots: number('slots', f.slots, { integer: true, min: 1 }),
    replicas: number('replicas', f.replicas, { integer: true }),
    requestTimeoutMs: number('request-timeout', f.requestTimeout, { integer: true, min: 1000 }),
    ...(f.idleInstance !== undefined ? { idleInstance: f.idleInstance } : {}),
    ...(f.stemCells !== undefined ? { stemCells: number('stem-cells', f.stemCells, { integer: true }) } : {}),
    modules: [...new Set(modules)] as ModuleLayout[],
    ...(f.sharedStore === false ? { sharedStore: false } : {}),
    ...(f.yardstick !== undefined ? { yardstick: 'dask' as const } : {})
  }
}
