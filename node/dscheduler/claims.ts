import { claimWinner } from './placement.ts'
import { instanceKey, type Claim, type InstanceRecord, type RequestState } from './request-state.ts'
import type { WorkflowHistory } from './history.ts'
import type { Membership } from './types.ts'
import type { Fence, StepClaimed, StepDone, StepsAssigned } from '../../protocols/events/index.ts'
import type { Ref, Source, Workflow } from '../workflow/types.ts'

/** What decides whether a claim still counts. */
export interface ClaimRules {
  membership: Membership
  /**
   * a claim also lapses when its claimant has not been heard for this long (0: membership alone decides,
   * for a membership that detects silent peers itself)
   */
  leaseMs: number
}

/** Whether a claim counts: claimant live (and heard within the lease), current incarnation, not below the floor. */
export function claimValid (peer: string, claim: Claim, rec: InstanceRecord, rules: ClaimRules, now = Date.now()): boolean {
  if (claim.attempt < rec.floor || !rules.membership.isLive(peer)) return false
  if (rules.leaseMs > 0) {
    const heard = rules.membership.lastHeard(peer)
    if (heard !== undefined && now - heard > rules.leaseMs) return false
  }
  const current = rules.membership.incarnationOf(peer)
  return current === undefined || claim.incarnation >= current
}

/**
 * The claim that runs an instance: among valid claims, the one order of `claimWinner` (highest attempt,
 * earliest claim, rendezvous score). Every peer that saw the same claims names the same winner.
 */
export function winnerOf (key: string, rec: InstanceRecord, rules: ClaimRules, now = Date.now()): (Claim & { peer: string }) | undefined {
  const valid: Array<{ peer: string, attempt: number, ts: number }> = []
  for (const [peer, claim] of rec.claims) if (claimValid(peer, claim, rec, rules, now)) valid.push({ peer, attempt: claim.attempt, ts: claim.ts })
  const w = claimWinner(key, valid)
  if (w === undefined) return undefined
  const claim = rec.claims.get(w.peer) as Claim
  return { peer: w.peer, ...claim }
}

/** The claims a claim event makes: a placer's assignment names its peers; a step-claimed is its sender's own. */
export function claimsOf (ev: StepClaimed | StepsAssigned): Array<{ step: string, index: number | null, attempt: number, peer: string, incarnation: number }> {
  return ev.type === 'steps-assigned'
    ? ev.claims
    : [{ step: ev.step, index: ev.index, attempt: ev.attempt }, ...(ev.also ?? [])].map(c => ({ ...c, peer: ev.from, incarnation: ev.incarnation }))
}

/** The record an event names, when the step exists and the index fits its kind (foreach or not). */
export function namedInstance (s: RequestState, step: string, index: number | null): InstanceRecord | undefined {
  const def = s.workflow.steps[step]
  if (def === undefined || (def.foreach === undefined) !== (index === null)) return undefined
  return s.instance(step, index)
}

/** Whether a runner's event comes from the claim that wins its instance (fencing). */
export function fromWinner (rec: InstanceRecord, from: string, fence: Fence): boolean {
  const w = rec.winner
  return w !== undefined && w.peer === from && w.attempt === fence.attempt && w.incarnation === fence.incarnation
}

/** A new claim outbids every earlier one (a takeover or re-run) and is never below the instance's floor. */
export function nextAttempt (rec: InstanceRecord): number {
  return Math.max(rec.floor, ...[...rec.claims.values()].map(c => c.attempt + 1))
}

/**
 * Records a claim (from a step-claimed event, or implied by a fenced event whose claim was not heard): a
 * claimant's higher attempt or newer incarnation replaces its older claim; the first time seen is kept.
 */
export function recordClaim (rec: InstanceRecord, peer: string, claim: Claim): boolean {
  const prev = rec.claims.get(peer)
  if (prev !== undefined && prev.attempt === claim.attempt && prev.incarnation === claim.incarnation) {
    // the same claim heard twice (or implied by a later event first): keep when it was really made
    if (claim.ts >= prev.ts) return false
    rec.claims.set(peer, { ...prev, ts: claim.ts })
    return true
  }
  if (prev !== undefined && (claim.attempt < prev.attempt || (claim.attempt === prev.attempt && claim.incarnation < prev.incarnation))) return false
  rec.claims.set(peer, claim)
  return true
}

/** The step outputs an input source reads. */
export function stepRefs (s: RequestState, step: string): readonly Ref[] {
  const def = s.step(step)
  let refs = stepRefsOf.get(def)
  if (refs === undefined) {
    refs = Object.values(def.in).flatMap(src => src.kind === 'oneOf' ? src.refs : [src]).filter(r => r.kind === 'step')
    stepRefsOf.set(def, refs)
  }
  return refs
}

/** per step definition (fixed once loaded): asked per event for every consumer a runner event may wake (send-slack.ts) */
const stepRefsOf = new WeakMap<object, Ref[]>()

export interface InputBytes {
  bytesAt: Map<string, number>
  total: number
  /** peers holding or producing the inputs (a consumer there needs no hand-off) */
  producers: Set<string>
  /** whether every input's size is known or expected (placement can price all of it) */
  complete: boolean
}

const severalRootsOf = new WeakMap<Workflow, boolean>()

/**
 * Whether the workflow has more than one root (a step that reads workflow inputs only, or a foreach over one). Its
 * roots' workflow inputs make no producer: every peer has them with the request, and each root takes its consumers
 * with it, so roots share the network's slots. Counting the submitter as their producer charged every other peer the
 * learned hop (~40 ms) for each root, and the submitter took roots up to its slots, then their consumers (cycles: 4 of
 * 10 groups, 8 level-two steps on its 4 slots while the others ran 4). A lone root stays where the request starts:
 * elsewhere it would only wait for the request to arrive (~10 ms on a busy testnet).
 */
export function severalRoots (wf: Workflow): boolean {
  let several = severalRootsOf.get(wf)
  if (several === undefined) {
    const fromInputs = (src: Source): boolean => src.kind === 'oneOf' ? src.refs.every(r => r.kind !== 'step') : src.kind !== 'step'
    let roots = 0
    for (const step of Object.values(wf.steps)) {
      const root = Object.values(step.in).every(fromInputs) && step.foreach?.kind !== 'step' && step.when?.ref.kind !== 'step'
      if (root) roots += step.foreach === undefined ? 1 : 2
    }
    several = roots > 1
    severalRootsOf.set(wf, several)
  }
  return several
}

/**
 * Bytes of an instance's inputs each peer holds or will hold: produced values at their holders (inline ones are
 * everywhere and count nowhere), and values not produced yet at the winner of their producer, sized from earlier
 * requests of the workflow. An element of a list counts as the whole list: the consumer fetches all of it.
 */
export function inputBytes (s: RequestState, step: string, index: number | null, history: WorkflowHistory): InputBytes {
  const out: InputBytes = { bytesAt: new Map(), total: 0, producers: new Set(), complete: true }
  const add = (peer: string, bytes: number): void => { out.bytesAt.set(peer, (out.bytesAt.get(peer) ?? 0) + bytes) }
  const inputsHaveProducers = !severalRoots(s.workflow)
  for (const src of Object.values(s.step(step).in)) {
    for (const ref of s.partialRefs(src, step, index)) {
      if (src.kind !== 'input' || inputsHaveProducers) for (const h of ref.holders) out.producers.add(h)
      if (ref.inline !== undefined) continue
      out.total += ref.size
      for (const h of ref.holders) add(h, ref.size)
    }
  }
  for (const { rec, output } of pendingProducers(s, step, index)) {
    const expected = history.expectedBytes(s.started.workflow, rec.step, output)
    const peer = rec.winner?.peer
    if (peer === undefined || expected === undefined) { out.complete = false; continue }
    out.producers.add(peer)
    out.total += expected
    add(peer, expected)
  }
  return out
}

/**
 * The producer instances whose outputs an instance reads and that have not produced them yet, once per output
 * read (placement prices their future bytes, the queue model expects the instance's inputs when they end).
 */
export function pendingProducers (s: RequestState, step: string, index: number | null): Array<{ rec: InstanceRecord, output: string }> {
  const out: Array<{ rec: InstanceRecord, output: string }> = []
  for (const ref of stepRefs(s, step)) {
    if (ref.kind !== 'step' || s.resolveRef(ref, step, index).state !== 'pending') continue
    const recs = s.step(ref.step).foreach === undefined ? [s.instances.get(instanceKey(ref.step, null))] : s.instancesOf(ref.step)
    for (const rec of recs) {
      if (rec !== undefined && rec.done === undefined && !s.hasOutput(ref.step, rec.index, ref.output)) out.push({ rec, output: ref.output })
    }
  }
  return out
}

/**
 * When an instance may be claimed, the mode's policy. Control: once every predecessor step returned.
 * Dataflow: at once when it is eager or reads only workflow inputs; else once some of its data worth moving
 * exists, or once every producer it reads is running (placed, inputs there) and earlier requests tell how large
 * their outputs will be
 * (placement can then weigh where its data will be), or once all its inputs exist. Early enough that producers
 * push to it; every peer pre-warms the workflow's modules at request start, so a late claim costs no cold start.
 */
export function claimable (s: RequestState, step: string, index: number | null, history?: WorkflowHistory): boolean {
  const def = s.step(step)
  if (s.started.mode === 'control') return s.predecessors(step).every(p => ['done', 'skipped'].includes(s.stepStatus(p)))
  if (def.trigger === 'eager') return true
  const fromSteps = Object.values(def.in).filter(src => src.kind === 'oneOf' || src.kind === 'step')
  if (fromSteps.some(src => s.partialRefs(src, step, index).some(ref => ref.inline === undefined))) return true
  if (fromSteps.every(src => s.resolve(src, step, index).state !== 'pending')) return true
  // one level ahead only: every producer it reads runs (or ran) somewhere, so its data comes soon and where
  // it will be is known; claiming further ahead would count waiting instances as load for a long time
  return history !== undefined && history.knows(s.started.workflow) && inputBytes(s, step, index, history).complete &&
    stepRefs(s, step).every(r => r.kind === 'step' && s.instancesOf(r.step).length > 0 &&
      s.instancesOf(r.step).every(p => p.done !== undefined || (p.winner !== undefined && p.runnable === true)))
}

/** The peers that won instances reading `producer.output` (element `element` of it, for a foreach over it). */
export function consumersOf (s: RequestState, producer: string, output: string, element: number | null): string[] {
  const reads = (ref: Ref | undefined): boolean => ref !== undefined && ref.kind === 'step' && ref.step === producer && ref.output === output
  const peers = new Set<string>()
  for (const name of s.readers.get(`${producer}.${output}`) ?? []) {
    const step = s.step(name)
    const perElement = element !== null && step.foreach !== undefined && reads(step.foreach)
    const recs = perElement ? [s.instances.get(instanceKey(name, element))] : s.instancesOf(name)
    for (const rec of recs) if (rec?.winner !== undefined) peers.add(rec.winner.peer)
  }
  return [...peers]
}

/**
 * A hand-off sample from a finished instance: how long after its last input's producer ended it became ready,
 * and whether that producer ran on another peer (placement learns what running away from the data costs).
 * Undefined when it tells nothing: no step input, or ready before the producer ended (outputs posted early).
 */
export function handoffSample (s: RequestState, step: string, from: string, readyAt: number): { remote: boolean, ms: number } | undefined {
  let last: StepDone | undefined
  for (const ref of stepRefs(s, step)) {
    if (ref.kind !== 'step') continue
    const recs = s.step(ref.step).foreach === undefined ? [s.instances.get(instanceKey(ref.step, null))] : s.instancesOf(ref.step)
    for (const r of recs) if (r?.done !== undefined && (last === undefined || r.done.endAt > last.endAt)) last = r.done
  }
  if (last === undefined || readyAt < last.endAt) return undefined
  return { remote: last.from !== from, ms: readyAt - last.endAt }
}
