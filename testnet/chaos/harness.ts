import { defaultLogger } from '@libp2p/logger'
import { ApiError, DflowClient } from '../../node/client.ts'
import { credentialsFor } from '../clients.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { CounterLedger, type Counters } from './metrics.ts'
import { countDuplicateRuns } from './duplicates.ts'
import { makePlan, type ChaosPlan, type Fault, type PlannedRequest } from './plan.ts'
import { percentile, recoveryMs } from './recovery.ts'
import { canonicalJson, ReferenceRunner } from './reference.ts'
import { workflowPath } from './workload.ts'
import type { ChaosCluster } from './cluster.ts'
import type { RequestView } from '../../node/dscheduler/types.ts'

const log = defaultLogger().forComponent('dflow:chaos')
const sleep = async (ms: number, signal?: AbortSignal): Promise<void> => new Promise(resolve => {
  const onAbort = (): void => { clearTimeout(t); resolve() }
  const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
  signal?.addEventListener('abort', onAbort, { once: true })
})

export type Verdict = 'ok' | 'failed' | 'lost' | 'wrong'

export interface RequestOutcome {
  index: number
  requestId: string
  workflow: string
  /** the peer it was submitted to */
  peer: number
  verdict: Verdict
  /** why it is not ok */
  detail?: string
  submittedAt: number
  finishedAt?: number
  /** not finished (ok or failed) when the run ended */
  hung?: boolean
}

export interface FaultOutcome extends Fault {
  at: number
  recoveredAt?: number
  recoverError?: string
  /** ms; undefined when a request in flight at the fault never finished */
  recoverMs?: number
}

/** The `--json` report, exactly these keys. */
export interface ChaosReport {
  requests: number
  ok: number
  failed: number
  lost: number
  wrong: number
  killed: number
  restarted: number
  takeovers: number
  reruns: number
  rereplications: number
  recoverMs: { p50: number | null, p99: number | null }
  seed: number
  /** instances that ran on more than one claim (from the run records of the peers up at the end) */
  duplicateRuns: number
  /** requests not finished when the run ended */
  hung: number
}

export interface ChaosResult {
  report: ChaosReport
  plan: ChaosPlan
  outcomes: RequestOutcome[]
  faults: FaultOutcome[]
  counters: Counters
  /** clean runs that hung on the embedded peer and were redone (see docs/chaos.md) */
  referenceRetries: number
  durationMs: number
}

export interface ChaosProgress {
  submitted: number
  finished: number
  total: number
  inFlight: number
  faults: number
  /** a fault or recovery just happened */
  event?: string
}

export interface RunChaosOptions {
  plan: ChaosPlan
  cluster: ChaosCluster
  /** requests in flight at once @default 4 */
  concurrency?: number
  /** a request not finished this long after its submission is lost @default 60000 */
  requestTimeoutMs?: number
  signal?: AbortSignal
  onProgress?: (p: ChaosProgress) => void
}

export { makePlan }

/** Runs the plan against the cluster and checks every result against a clean run. Does not close the cluster. */
export async function runChaos (opts: RunChaosOptions): Promise<ChaosResult> {
  const { plan, cluster, signal } = opts
  const concurrency = opts.concurrency ?? 4
  const timeoutMs = opts.requestTimeoutMs ?? 60_000
  const t0 = Date.now()
  const ledger = new CounterLedger()
  const fresh = new Set<number>()
  const registered = new Set<string>()
  const cids = new Map<string, { cid: string, bytes: Uint8Array }>()
  for (const name of new Set(plan.requests.map(r => r.workflow))) {
    const w = await loadWorkflow(workflowPath(name))
    cids.set(name, { cid: w.cid, bytes: w.bytes })
  }
  const up = (): number[] => Array.from({ length: cluster.size }, (_, i) => i).filter(i => cluster.isUp(i))
  for (const i of up()) {
    const p = cluster.peer(i)
    if (cluster.owned) fresh.add(p.pid)
    await ledger.sample(p.pid, p.api, fresh.has(p.pid))
  }

  const outcomes: RequestOutcome[] = []
  /** request index -> canonical JSON of its outputs */
  const outputs = new Map<number, string>()
  const faults: FaultOutcome[] = []
  const recoveries: Array<Promise<void>> = []
  const followers: Array<Promise<void>> = []
  let inFlight = 0
  let finished = 0
  let wake: (() => void) | undefined
  const progress = (event?: string): void => {
    opts.onProgress?.({ submitted: outcomes.length, finished, total: plan.requests.length, inFlight, faults: faults.length, event })
  }

  const inject = async (f: Fault): Promise<void> => {
    const victim = cluster.peer(f.peer)
    await ledger.sample(victim.pid, victim.api, fresh.has(victim.pid))
    const fo: FaultOutcome = { ...f, at: Date.now() }
    await cluster.fault(f.peer, f.kind)
    faults.push(fo)
    log('fault #%d: %s peer %d (pid %d) before request %d', f.n, f.kind, f.peer, victim.pid, f.atRequest)
    progress(`${f.kind === 'kill' ? 'killed' : 'cut off'} peer ${f.peer}`)
    if (f.recoverAfterMs === undefined) return
    recoveries.push((async () => {
      await sleep(f.recoverAfterMs as number, signal)
      if (signal?.aborted === true) return
      try {
        await cluster.recover(f.peer, f.kind)
        fo.recoveredAt = Date.now()
        const p = cluster.peer(f.peer)
        if (f.kind === 'kill') fresh.add(p.pid)
        progress(`${f.kind === 'kill' ? 'restarted' : 'healed'} peer ${f.peer}`)
      } catch (err) {
        fo.recoverError = (err as Error).message
        progress(`could not ${f.kind === 'kill' ? 'restart' : 'heal'} peer ${f.peer}: ${fo.recoverError}`)
      }
    })())
  }

  const submit = async (r: PlannedRequest): Promise<RequestOutcome> => {
    const live = up()
    // the planned peer, or the next one up after it: deterministic given which peers are down
    const target = [...live.filter(i => i >= r.peer), ...live.filter(i => i < r.peer)][0]
    const out: RequestOutcome = { index: r.index, requestId: r.requestId, workflow: r.workflow, peer: target ?? r.peer, verdict: 'lost', submittedAt: Date.now() }
    if (target === undefined) { out.detail = 'no peer up to submit to'; return out }
    const p = cluster.peer(target)
    const client = new DflowClient(p.api, { ...credentialsFor(p.api), timeoutMs: 15_000 })
    const w = cids.get(r.workflow) as { cid: string, bytes: Uint8Array }
    try {
      if (!registered.has(`${p.pid}:${w.cid}`)) {
        await client.addWorkflow(w.bytes)
        registered.add(`${p.pid}:${w.cid}`)
      }
      await client.submit({ workflow: w.cid, inputs: r.inputs, requestId: r.requestId })
    } catch (err) {
      out.verdict = 'failed'
      out.detail = `submit to peer ${target} failed: ${(err as Error).message}`
    }
    out.submittedAt = Date.now()
    return out
  }

  /** Polls any peer that is up (the submitter first) until the request is no longer running. */
  const follow = async (out: RequestOutcome): Promise<RequestView | undefined> => {
    const deadline = out.submittedAt + timeoutMs
    let turn = 0
    let last = 'not yet known to any peer'
    while (Date.now() < deadline && signal?.aborted !== true) {
      const live = up()
      const order = live.includes(out.peer) ? [out.peer, ...live.filter(i => i !== out.peer)] : live
      if (order.length > 0) {
        const i = order[turn++ % order.length]
        try {
          const view = await new DflowClient(cluster.peer(i).api, { ...credentialsFor(cluster.peer(i).api), timeoutMs: 8000 }).status(out.requestId, signal)
          if (view.status !== 'running') return view
          last = `still running (asked peer ${i})`
          turn = 0
        } catch (err) {
          last = err instanceof ApiError && err.status === 404 ? `peer ${i} does not know it` : `peer ${i}: ${(err as Error).message}`
        }
      }
      await sleep(150, signal)
    }
    out.detail = `not finished after ${timeoutMs} ms: ${last}`
    out.hung = true
    return undefined
  }

  const track = async (r: PlannedRequest, out: RequestOutcome): Promise<void> => {
    try {
      if (out.verdict === 'failed') return
      const view = await follow(out)
      if (view === undefined) return
      out.finishedAt = Date.now()
      if (view.status === 'failed') {
        out.verdict = 'failed'
        out.detail = view.error ?? 'failed'
        return
      }
      out.verdict = 'ok'
      outputs.set(out.index, canonicalJson(view.outputs))
    } finally {
      inFlight--
      finished++
      progress()
      wake?.()
    }
  }

  try {
    progress()
    for (const r of plan.requests) {
      signal?.throwIfAborted()
      for (const f of plan.faults.filter(f => f.atRequest === r.index)) await inject(f)
      while (inFlight >= concurrency) {
        await new Promise<void>(resolve => {
          const onAbort = (): void => { resolve() }
          wake = () => { signal?.removeEventListener('abort', onAbort); resolve() }
          signal?.addEventListener('abort', onAbort, { once: true })
        })
        signal?.throwIfAborted()
      }
      const out = await submit(r)
      outcomes.push(out)
      inFlight++
      progress()
      followers.push(track(r, out))
    }
    await Promise.all(followers)
    await Promise.all(recoveries)
    signal?.throwIfAborted()
  } finally {
    await Promise.allSettled(followers)
  }

  log('load done; sampling counters')
  for (const i of up()) {
    const p = cluster.peer(i)
    await ledger.sample(p.pid, p.api, fresh.has(p.pid))
  }
  log('counting duplicate runs')
  const duplicateRuns = await countDuplicateRuns(cluster, outcomes)
  log('checking results against clean runs')

  // the clean runs, after the load so they do not compete with it for the CPU
  const reference = new ReferenceRunner()
  let referenceRetries = 0
  try {
    for (const out of outcomes) {
      const got = outputs.get(out.index)
      if (out.verdict !== 'ok' || got === undefined) continue
      const r = plan.requests[out.index]
      log('clean run of %s (%s)', r.requestId, r.workflow)
      const want = await reference.expected(r.workflow, r.inputs)
      if (got !== want) {
        out.verdict = 'wrong'
        out.detail = `outputs ${got} differ from the clean run's ${want}`
      }
    }
  } finally {
    referenceRetries = reference.retries
    await reference.stop()
  }

  for (const f of faults) f.recoverMs = recoveryMs(f.at, outcomes)
  const samples = faults.map(f => f.recoverMs).filter((m): m is number => m !== undefined)
  const counters = ledger.total()
  const count = (v: Verdict): number => outcomes.filter(o => o.verdict === v).length
  const report: ChaosReport = {
    requests: plan.requests.length,
    ok: count('ok'),
    failed: count('failed'),
    lost: count('lost'),
    wrong: count('wrong'),
    killed: faults.length,
    restarted: faults.filter(f => f.recoveredAt !== undefined).length,
    takeovers: counters.takeovers,
    reruns: counters.reruns,
    rereplications: counters.rereplications,
    recoverMs: { p50: percentile(samples, 50), p99: percentile(samples, 99) },
    seed: plan.seed,
    duplicateRuns,
    hung: outcomes.filter(o => o.hung === true).length
  }
  return { report, plan, outcomes, faults, counters, referenceRetries, durationMs: Date.now() - t0 }
}

export function verified (report: ChaosReport): boolean {
  return report.failed === 0 && report.lost === 0 && report.wrong === 0 && report.ok === report.requests
}
