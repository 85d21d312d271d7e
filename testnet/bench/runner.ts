/**
 * Runs a bench: its own testnet, every workflow loaded once and its bundle posted to every peer, a discarded
 * warm-up (closed loop: per workflow, right before its measured requests), then the measured requests with the modes
 * interleaved (closed loop: one at a time; open loop: Poisson
 * arrivals), each submitted to a seeded random peer with its own seed input.
 */
import { mulberry32 } from '../prng.ts'
import { rm } from 'node:fs/promises'
import { defaultLogger } from '@libp2p/logger'
import { DflowClient } from '../../node/client.ts'
import { credentialsFor } from '../clients.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { runRequest, totalSent, totalShared, type RequestSpec } from './request.ts'
import { startTarget, type BenchTarget } from './target.ts'
import { peerFlags } from './options.ts'
import { prepareJobs, type BenchJob } from './workflows.ts'
import { summarise } from './stats.ts'
import { describeMachine } from './machine.ts'
import type { TestnetProgress } from '../index.ts'
import type { BenchOptions, BenchResults, Sample } from './types.ts'
import { runDaskYardstick } from './dask/yardstick.ts'
import { lowerBoundMs, type DagShape } from './shape.ts'

const log = defaultLogger().forComponent('dflow:bench')

export type BenchProgress =
  | { phase: 'testnet', detail: TestnetProgress }
  | { phase: 'load', done: number, total: number }
  | { phase: 'warmup' | 'measure', done: number, total: number, label: string, failed: number }
  | { phase: 'idle', bytesPerSec: number }
  | { phase: 'yardstick', workflows: number }

interface Planned extends RequestSpec { job: BenchJob }

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Runs a whole bench and answers the results (rows summarised, latencies kept for the CDF). */
export async function runBench (opts: BenchOptions, onProgress: (p: BenchProgress) => void = () => {}, onSample?: (s: Sample) => void): Promise<{ results: BenchResults, samples: Sample[] }> {
  const { results, samples, jobs } = await runOnTestnet(opts, onProgress, onSample)
  if (opts.yardstick === 'dask') await runYardstick(results, jobs, opts, onProgress)
  return { results, samples }
}

async function runOnTestnet (opts: BenchOptions, onProgress: (p: BenchProgress) => void, onSample?: (s: Sample) => void): Promise<{ results: BenchResults, samples: Sample[], jobs: BenchJob[] }> {
  const started = Date.now()
  // the commit and date of the code the peers start with, not of whatever is checked out when the run ends
  const machine = describeMachine()
  const timeoutMs = opts.requestTimeoutMs ?? 120_000
  const { jobs, generatedDir } = prepareJobs(opts)
  let target: BenchTarget | undefined
  try {
    const extraFlags = peerFlags(opts)
    target = await startTarget({ peers: opts.peers, slots: opts.slots, replicas: opts.replicas, dir: opts.dir, linkRate: opts.linkRate, extraFlags, onProgress: detail => { onProgress({ phase: 'testnet', detail }) } })
    const clients = target.peers.map(p => new DflowClient(p.api, { ...credentialsFor(p.api), timeoutMs: 60_000 }))
    // load each workflow once; every peer gets the bundle so no first request pays a bundle fetch
    const cids = new Map<BenchJob, string>()
    for (const [i, job] of jobs.entries()) {
      const file = await loadWorkflow(job.path)
      const got = await Promise.all(clients.map(async c => c.addWorkflow(file.bytes)))
      cids.set(job, got[0])
      onProgress({ phase: 'load', done: i + 1, total: jobs.length })
    }
    const idleBytesPerSec = await idleRate(clients)
    onProgress({ phase: 'idle', bytesPerSec: idleBytesPerSec })
    // seeded, so peer choice and arrivals repeat with --seed
    const rand = mulberry32(opts.seed)
    let n = 0
    const plan = (job: BenchJob, mode: Planned['mode']): Planned => {
      const peer = Math.floor(rand() * clients.length)
      const tag = `${opts.seed}-${n++}`
      return { job, workflow: job.workflow, postAt: job.postAt, cid: cids.get(job)!, mode, inputs: job.inputs(`bench-${tag}-${started}`), peer, requestId: `bench-${started}-${tag}` }
    }
    // per job: warm-up (discarded), then R rounds with the modes in a rotating order
    const warm: Planned[] = []
    const measured: Planned[] = []
    for (const job of jobs) {
      for (let w = 0; w < opts.warmup; w++) for (const mode of opts.modes) warm.push(plan(job, mode))
      for (let r = 0; r < opts.requests; r++) {
        for (let k = 0; k < opts.modes.length; k++) measured.push(plan(job, opts.modes[(r + k) % opts.modes.length]))
      }
    }
    const label = (p: Planned): string => `${p.workflow}${p.postAt === null ? '' : ` postAt ${p.postAt}`} ${p.mode}`
    let warmFailed = 0
    let warmDone = 0
    const warmUp = async (which: (p: Planned) => boolean): Promise<void> => {
      for (const p of warm.filter(which)) {
        opts.signal?.throwIfAborted()
        const s = await runOrFail(clients[p.peer], p, timeoutMs)
        if (s.status !== 'ok') { warmFailed++; log('warm-up %s failed: %s', s.requestId, s.error) }
        onProgress({ phase: 'warmup', done: ++warmDone, total: warm.length, label: label(p), failed: warmFailed })
      }
    }
    let failed = 0
    const samples: Sample[] = []
    const record = (s: Sample): void => { samples.push(s); if (s.status !== 'ok') failed++; onSample?.(s) }
    if (opts.ratePerMin === undefined) {
      // closed loop: a job's warm-up right before its measured requests, so what it warmed is still warm (peers
      // retire instances idle for --idle-instance, 60 s by default: a warm-up of every job up front let the first
      // measured request of a later job, always a dataflow one, start all its instances cold)
      const warmedUp = new Set<BenchJob>()
      for (const [i, p] of measured.entries()) {
        if (!warmedUp.has(p.job)) { warmedUp.add(p.job); await warmUp(w => w.job === p.job) }
        opts.signal?.throwIfAborted()
        // a peer that went away fails the requests sent to it (counted), not the whole run; its bytes count as 0
        const before = await counters(clients)
        let after = before
        const s = await runOrFail(clients[p.peer], p, timeoutMs, async () => { after = await counters(clients) })
        const delta = (k: keyof Counters): number => Number.isFinite(after[k] - before[k]) ? Math.max(0, after[k] - before[k]) : 0
        record({ ...s, bytes: delta('sent'), sharedBytes: delta('shared') })
        onProgress({ phase: 'measure', done: i + 1, total: measured.length, label: label(p), failed })
      }
    } else {
      await warmUp(() => true)
      await openLoop(measured, clients, opts.ratePerMin, rand, timeoutMs, opts.signal, record, (done, p) => { onProgress({ phase: 'measure', done, total: measured.length, label: label(p), failed }) })
    }
    const instanceStarts = await totalPoolCounter(clients, 'instanceStarts')
    const stemCellStarts = await totalPoolCounter(clients, 'stemCellStarts')
    const results = summarise(samples, jobs, {
      ...machine,
      peers: opts.peers,
      slots: opts.slots,
      replicas: opts.replicas,
      timeScale: opts.timeScale,
      sizeScale: opts.sizeScale,
      initMs: opts.initMs,
      postAt: opts.postAt,
      modes: opts.modes,
      loop: opts.ratePerMin === undefined ? 'closed' : 'open',
      ratePerMin: opts.ratePerMin ?? null,
      linkRate: opts.linkRate ?? null,
      idleInstance: opts.idleInstance ?? null,
      stemCells: opts.stemCells ?? null,
      modules: opts.modules ?? ['per-workflow'],
      sharedStore: opts.sharedStore !== false,
      warmup: opts.warmup,
      seed: opts.seed,
      durationMs: 0,
      idleBytesPerSec,
      instanceStarts,
      stemCellStarts,
      bytesMethod: (opts.ratePerMin === undefined
        ? 'closed loop: sum over peers of libp2p bytes sent, read just before submit and just after the request ended (includes background gossip/heartbeats, about idleBytesPerSec x latency)'
        : 'open loop: sum over peers of libp2p bytes sent per 1 s window, each window apportioned to the requests running in it by their overlap time (approximate)') +
        '; shm bytes: the same for the bytes peers took from same-host peers\' shared files (DStore sharedBytes), which never cross libp2p and are not in bytes'
    })
    results.durationMs = Date.now() - started
    return { results, samples, jobs }
  } finally {
    await target?.stop().catch(err => { log.error('stopping the bench testnet: %e', err) })
    if (generatedDir !== undefined) await rm(generatedDir, { recursive: true, force: true })
  }
}

/**
 * `--yardstick dask`: the same shapes (one per workflow: Dask has no postAt) on Dask distributed, run after the
 * dflow run with its testnet stopped, so the two never share the machine at once. Adds `results.yardstick`.
 */
export async function runYardstick (results: BenchResults, jobs: Array<{ workflow: string, shape: DagShape | null }>, opts: Pick<BenchOptions, 'requests' | 'warmup' | 'signal'>, onProgress: (p: BenchProgress) => void = () => {}): Promise<void> {
  const shapes = new Map<string, DagShape>()
  for (const j of jobs) if (j.shape !== null && !shapes.has(j.workflow)) shapes.set(j.workflow, { ...j.shape, name: j.workflow })
  onProgress({ phase: 'yardstick', workflows: shapes.size })
  const started = Date.now()
  const r = await runDaskYardstick([...shapes.values()], { warmup: Math.max(1, opts.warmup), requests: opts.requests, signal: opts.signal })
  // Dask runs a task when those it waits for have returned: the control-flow bound, on as many slots as dflow had
  const lb = (w: string): number | null => {
    const shape = shapes.get(w)
    return shape === undefined ? null : Math.round(lowerBoundMs(shape, results.peers * results.slots) * 10) / 10
  }
  results.yardstick = r.available
    ? { engine: 'dask', version: r.version, workers: r.workers, threads: r.threads, rows: r.rows.map(x => ({ workflow: x.name, requests: x.requests, p50Ms: x.p50Ms, p99Ms: x.p99Ms, lowerBoundMs: lb(x.name) })) }
    : { engine: 'dask', skipped: r.reason }
  results.durationMs += Date.now() - started
}

/** A request that times out or cannot be submitted is a failed sample (counted, not timed); the run goes on. */
async function runOrFail (client: DflowClient, p: RequestSpec, timeoutMs: number, onDone?: () => Promise<void>): Promise<Omit<Sample, 'bytes' | 'sharedBytes'>> {
  const submittedAt = Date.now()
  try {
    return await runRequest(client, p, timeoutMs, onDone)
  } catch (err) {
    log('request %s (%s, %s) failed: %s', p.requestId, p.workflow, p.mode, (err as Error).message)
    await onDone?.().catch(() => {})
    return { workflow: p.workflow, mode: p.mode, postAt: p.postAt, requestId: p.requestId, status: 'failed', error: (err as Error).message, latencyMs: Date.now() - submittedAt, serverMs: null, coldStartMs: 0, coldSteps: 0, peer: p.peer, submittedAt, doneAt: Date.now(), steps: [] }
  }
}

interface Counters { sent: number, shared: number }

/** libp2p bytes sent and same-host shared bytes taken, summed over peers (NaN where a peer did not answer). */
async function counters (clients: DflowClient[]): Promise<Counters> {
  const [sent, shared] = await Promise.all([totalSent(clients).catch(() => NaN), totalShared(clients).catch(() => NaN)])
  return { sent, shared }
}

/** A counter of every peer's pool (instances started, ...) so far, summed; null when a peer does not answer or say. */
async function totalPoolCounter (clients: DflowClient[], counter: 'instanceStarts' | 'stemCellStarts'): Promise<number | null> {
  try {
    const all = await Promise.all(clients.map(async c => (await c.schedulerMetrics()).pool?.[counter]))
    return all.every(n => typeof n === 'number') ? (all as number[]).reduce((a, b) => a + b, 0) : null
  } catch {
    return null
  }
}

/** Background traffic with nothing running (gossip heartbeats, peer heartbeats), over 2 s. */
async function idleRate (clients: DflowClient[]): Promise<number> {
  const a = await totalSent(clients)
  const t0 = performance.now()
  await sleep(2000)
  const b = await totalSent(clients)
  return Math.round((b - a) / ((performance.now() - t0) / 1000))
}

/** Poisson arrivals at ratePerMin; bytes from 1 s traffic windows apportioned by overlap. */
async function openLoop (measured: Planned[], clients: DflowClient[], ratePerMin: number, rand: () => number, timeoutMs: number, signal: AbortSignal | undefined, record: (s: Sample) => void, progress: (done: number, p: Planned) => void): Promise<void> {
  const windows: Array<{ from: number, to: number, bytes: number, shared: number }> = []
  let last = { t: Date.now(), sent: await totalSent(clients), shared: await totalShared(clients) }
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      await sleep(1000)
      const now = { t: Date.now(), sent: await totalSent(clients).catch(() => last.sent), shared: await totalShared(clients).catch(() => last.shared) }
      windows.push({ from: last.t, to: now.t, bytes: Math.max(0, now.sent - last.sent), shared: Math.max(0, now.shared - last.shared) })
      last = now
    }
  })()
  const pending: Array<Promise<void>> = []
  const done: Array<Omit<Sample, 'bytes' | 'sharedBytes'>> = []
  let count = 0
  for (const p of measured) {
    signal?.throwIfAborted()
    pending.push(runOrFail(clients[p.peer], p, timeoutMs).then(s => { done.push(s); progress(++count, p) }))
    // exponential inter-arrival times: a Poisson process
    await sleep(-Math.log(1 - rand()) * 60_000 / ratePerMin)
  }
  await Promise.all(pending)
  sampling = false
  await sampler
  for (const s of done) {
    let bytes = 0
    let shared = 0
    for (const w of windows) {
      const overlap = Math.min(w.to, s.doneAt) - Math.max(w.from, s.submittedAt)
      if (overlap <= 0) continue
      const weights = done.reduce((a, o) => a + Math.max(0, Math.min(w.to, o.doneAt) - Math.max(w.from, o.submittedAt)), 0)
      bytes += w.bytes * overlap / weights
      shared += w.shared * overlap / weights
    }
    record({ ...s, bytes: Math.round(bytes), sharedBytes: Math.round(shared) })
  }
}
