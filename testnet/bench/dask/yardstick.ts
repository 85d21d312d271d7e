/**
 * The Dask yardstick: runs workflow shapes on Dask distributed (run_dask.py) side by side with a dflow run.
 * Needs python3 with `distributed` (Debian: `apt-get install python3-distributed`); when it is missing the caller
 * gets `available: false` and a reason to print, never a made-up figure.
 */
import { spawn, spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { percentile } from '../stats.ts'
import type { DagShape } from '../shape.ts'

const here = dirname(fileURLToPath(import.meta.url))
const SCRIPT = join(here, 'run_dask.py')

export interface YardstickRow { name: string, requests: number, p50Ms: number, p99Ms: number, latenciesMs: number[] }

export type YardstickResult =
  | { available: true, engine: 'dask', version: string, workers: number, threads: number, rows: YardstickRow[] }
  | { available: false, engine: 'dask', reason: string }

export interface YardstickOptions {
  warmup: number
  requests: number
  /** @default 4 */
  workers?: number
  /** @default 4 */
  threads?: number
  /** tasks return their output bytes (moved between worker processes) @default true */
  payloads?: boolean
  /** pythons to try, in order (default: findDaskPython's) */
  pythons?: string[]
  /** whole run @default 30 min */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * The first python that imports `distributed`: $DFLOW_PYTHON, then `python3` on PATH, then /usr/bin/python3
 * (a pyenv or venv python on PATH usually lacks Debian's packages).
 */
export function findDaskPython (candidates: Array<string | undefined> = [process.env.DFLOW_PYTHON, 'python3', '/usr/bin/python3']): { python: string, version: string } | { python: null, reason: string } {
  const tried: string[] = []
  for (const py of candidates) {
    if (py === undefined || py === '' || tried.includes(py)) continue
    tried.push(py)
    const res = spawnSync(py, ['-c', 'import distributed; print(distributed.__version__)'], { encoding: 'utf8', timeout: 60_000 })
    if (res.status === 0) return { python: py, version: res.stdout.trim() }
  }
  return { python: null, reason: `no python with Dask distributed (tried ${tried.join(', ')}); install it (Debian: apt-get install python3-distributed) or set DFLOW_PYTHON` }
}

/** Runs every shape on one LocalCluster, warm-ups then timed requests one at a time. */
export async function runDaskYardstick (shapes: DagShape[], opts: YardstickOptions): Promise<YardstickResult> {
  const found = findDaskPython(opts.pythons)
  if (found.python === null) return { available: false, engine: 'dask', reason: found.reason }
  const input = JSON.stringify({ shapes, warmup: opts.warmup, requests: opts.requests, workers: opts.workers ?? 4, threads: opts.threads ?? 4, payloads: opts.payloads ?? true })
  const { stdout, stderr, code } = await new Promise<{ stdout: string, stderr: string, code: number | null }>((resolve, reject) => {
    const child = spawn(found.python, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal, timeout: opts.timeoutMs ?? 30 * 60_000, killSignal: 'SIGKILL' })
    let out = ''
    let err = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-8000) })
    child.on('error', reject)
    child.on('close', c => { resolve({ stdout: out, stderr: err, code: c }) })
    child.stdin.end(input)
  })
  if (code !== 0) return { available: false, engine: 'dask', reason: `run_dask.py exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}` }
  const parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { version: string, workers: number, threads: number, shapes: Array<{ name: string, latenciesMs: number[] }> }
  return {
    available: true,
    engine: 'dask',
    version: parsed.version,
    workers: parsed.workers,
    threads: parsed.threads,
    rows: parsed.shapes.map(s => {
      const sorted = [...s.latenciesMs].sort((a, b) => a - b)
      return { name: s.name, requests: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), latenciesMs: sorted }
    })
  }
}
