import { claimWinner } from './placement.ts'
import { instanceKey, type InstanceRecord, type RequestState } from './request-state.ts'
import type { Membership } from './types.ts'
import type { Ref } from '../workflow/types.ts'

/**
 * The key an instance is placed by: the request is part of it, so the same step of different requests ranks
 * peers differently and load spreads across the network instead of every request sending step X to one peer.
 */
export function placementKey (request: string, step: string, index: number | null): string {
  return `${request}/${instanceKey(step, index)}`
}

/** What decides whether a claim still counts. */
export interface ClaimRules {
  membership: Membership
  /** a claim lapses when its claimant has not been heard for this long */
  leaseMs: number
}

/**
 * The peer that runs an instance: among claims that are not void — lease current (claimant heard within
 * leaseMs: a cut-off peer's claims lapse even while its TCP connections linger), claim made by the
 * claimant's current incarnation, attempt not below the instance's floor — the highest attempt, then
 * rendezvous score. Every peer that saw the same claims names the same winner.
 */
export function winnerOf (key: string, rec: InstanceRecord, rules: ClaimRules, now = Date.now()): string | undefined {
  const valid: Array<{ peer: string, attempt: number }> = []
  for (const [peer, claim] of rec.claims) {
    if (claim.attempt < rec.floor || !rules.membership.isLive(peer)) continue
    if (now - (rules.membership.lastHeard(peer) ?? 0) > rules.leaseMs) continue
    const current = rules.membership.incarnationOf(peer)
    if (current !== undefined && claim.incarnation < current) continue
    valid.push({ peer, attempt: claim.attempt })
  }
  return claimWinner(key, valid)
}

/** A new claim outbids every earlier one (a takeover or re-run) and is never below the instance's floor. */
export function nextAttempt (rec: InstanceRecord): number {
  return Math.max(rec.floor, ...[...rec.claims.values()].map(c => c.attempt + 1))
}

/**
 * Bytes of the instance's inputs each peer holds, counting what exists so far (inline values are everywhere
 * and do not count). An element of a list counts as the whole list: the consumer fetches all of it.
 */
export function localityBytes (s: RequestState, step: string, index: number | null): Map<string, number> {
  const bytes = new Map<string, number>()
  for (const src of Object.values(s.step(step).in)) {
    for (const ref of s.partialRefs(src, step, index)) {
      if (ref.inline !== undefined) continue
      for (const h of ref.holders) bytes.set(h, (bytes.get(h) ?? 0) + ref.size)
    }
  }
  return bytes
}

/**
 * When an instance may be claimed, the mode's policy. Control: once every predecessor step returned.
 * Dataflow: once some of its data exists (or at once when it reads only workflow inputs, or is eager): early
 * enough that its producers push the rest to it, late enough to place it where its first inputs already
 * are. Every peer pre-warms the workflow's modules at request start, so a late claim costs no cold start.
 */
export function claimable (s: RequestState, step: string, index: number | null): boolean {
  const def = s.step(step)
  if (s.started.mode === 'control') return s.predecessors(step).every(p => ['done', 'skipped'].includes(s.stepStatus(p)))
  if (def.trigger === 'eager') return true
  const fromSteps = Object.values(def.in).filter(src => src.kind === 'oneOf' || src.kind === 'step')
  // some data worth moving exists (its holders tell where to run), or everything it reads from steps exists
  if (fromSteps.some(src => s.partialRefs(src, step, index).some(ref => ref.inline === undefined))) return true
  return fromSteps.every(src => s.resolve(src, step, index).state !== 'pending')
}

/** The peers that won instances reading `producer.output` (element `element` of it, for a foreach over it). */
export function consumersOf (s: RequestState, producer: string, output: string, element: number | null,
  winner: (key: string, rec: InstanceRecord) => string | undefined): string[] {
  const reads = (ref: Ref): boolean => ref.kind === 'step' && ref.step === producer && ref.output === output
  const peers = new Set<string>()
  for (const [name, step] of Object.entries(s.workflow.steps)) {
    const srcs = [...Object.values(step.in).flatMap(src => src.kind === 'oneOf' ? src.refs : [src]), ...(step.foreach !== undefined ? [step.foreach] : [])]
    if (!srcs.some(reads)) continue
    const perElement = element !== null && step.foreach !== undefined && reads(step.foreach)
    for (const rec of s.instances.values()) {
      if (rec.step !== name || (perElement && rec.index !== element)) continue
      const w = winner(placementKey(s.id, name, rec.index), rec)
      if (w !== undefined) peers.add(w)
    }
  }
  return [...peers]
}
