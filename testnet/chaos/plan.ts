import { fork, int, pick, seedOf, shuffle } from '../prng.ts'
import { inputsFor } from './workload.ts'
import type { Value } from '../../node/values/codec.ts'

export class ChaosPlanError extends Error {
  static readonly NAME = 'ChaosPlanError'
  constructor (message: string) {
    super(message)
    this.name = ChaosPlanError.NAME
  }
}

export type FaultKind = 'kill' | 'partition'

export interface Fault {
  /** 1-based, in the order they happen */
  n: number
  kind: FaultKind
  /** testnet index of the victim */
  peer: number
  /** the fault happens just before request #atRequest (0-based) is submitted */
  atRequest: number
  /** restart (kill) or heal (partition) this long after the fault; undefined = stays dead */
  recoverAfterMs?: number
}

export interface PlannedRequest {
  index: number
  requestId: string
  workflow: string
  /** the peer it is sent to (the next live one if this one is down then) */
  peer: number
  inputs: Record<string, Value>
}

export interface ChaosPlan {
  seed: number
  peers: number
  faults: Fault[]
  requests: PlannedRequest[]
}

export interface PlanOptions {
  seed: string | number
  peers: number
  requests: number
  workflows: string[]
  /** number of faults */
  kill: number
  /** kill + restart (or partition + heal) */
  restart: boolean
  partition?: boolean
  /** @default [3000, 6000] */
  recoverAfterMs?: [number, number]
}

/**
 * The whole run derived from the seed alone, before anything starts: the workload and the kill plan.
 * Each uses its own PRNG stream, so e.g. the peer chosen as victim does not shift when inputs change shape.
 */
export function makePlan (opts: PlanOptions): ChaosPlan {
  const seed = seedOf(opts.seed)
  const { peers, requests, kill } = opts
  if (!Number.isInteger(peers) || peers < 2) throw new ChaosPlanError(`--peers must be at least 2, got ${peers}`)
  if (!Number.isInteger(requests) || requests < 1) throw new ChaosPlanError(`--requests must be at least 1, got ${requests}`)
  if (!Number.isInteger(kill) || kill < 0) throw new ChaosPlanError(`--kill must be 0 or more, got ${kill}`)
  if (kill > peers - 1) throw new ChaosPlanError(`--kill ${kill} needs more peers than ${peers}: at least one must survive`)
  if (kill > 0 && requests < 2) throw new ChaosPlanError('faults happen during the load: use --requests 2 or more')
  if (opts.workflows.length === 0) throw new ChaosPlanError('no workflows to run')

  const load = fork(seed, 'load')
  const planned: PlannedRequest[] = []
  for (let i = 0; i < requests; i++) {
    const workflow = pick(load, opts.workflows)
    const peer = int(load, 0, peers - 1)
    planned.push({ index: i, requestId: `chaos-${seed}-${i}`, workflow, peer, inputs: inputsFor(workflow, fork(seed, `inputs:${i}`)) })
  }

  // the moments: distinct request counts spread over the middle of the load (10%..80%), so each fault has
  // requests in flight when it hits and requests after it that must still complete
  const when = fork(seed, 'when')
  const lo = Math.max(1, Math.floor(requests * 0.1))
  const hi = Math.max(lo, Math.floor(requests * 0.8))
  const slots = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)
  const moments = (slots.length >= kill ? shuffle(when, slots).slice(0, kill) : Array.from({ length: kill }, () => int(when, lo, hi))).sort((a, b) => a - b)

  // the victims: the peer the latest request went to when it is still untouched (so runs do include "the
  // submitting peer dies"), otherwise a random untouched one
  const who = fork(seed, 'who')
  const [rlo, rhi] = opts.recoverAfterMs ?? [3000, 6000]
  const used = new Set<number>()
  const faults: Fault[] = moments.map((atRequest, k) => {
    const latest = planned[atRequest - 1].peer
    const free = Array.from({ length: peers }, (_, i) => i).filter(i => !used.has(i))
    const peer = !used.has(latest) && who() < 0.5 ? latest : pick(who, free)
    used.add(peer)
    const recover = opts.restart || opts.partition === true ? int(who, rlo, rhi) : undefined
    return { n: k + 1, kind: opts.partition === true ? 'partition' : 'kill', peer, atRequest, recoverAfterMs: recover }
  })
  return { seed, peers, faults, requests: planned }
}

/** One line per fault, printed before the run starts. */
export function describePlan (plan: ChaosPlan): string {
  if (plan.faults.length === 0) return `seed ${plan.seed}: no faults planned`
  const lines = plan.faults.map(f => {
    const what = f.kind === 'kill' ? 'SIGKILL' : 'cut off'
    const after = f.recoverAfterMs === undefined ? ', not restarted' : `, ${f.kind === 'kill' ? 'restart' : 'heal'} after ${(f.recoverAfterMs / 1000).toFixed(1)} s`
    return `  #${f.n}: ${what} peer ${f.peer} before request ${f.atRequest}${after}`
  })
  return `seed ${plan.seed}: ${plan.faults.length} fault(s) planned\n${lines.join('\n')}`
}
