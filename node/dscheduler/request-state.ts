import { createHash } from 'node:crypto'
import { encodeEvent, type ElementPosted, type OutputReady, type RequestStarted, type StepDone, type StepFailed, type ValueRef } from '../../protocols/events/index.ts'
import type { Ref, Source, StepDef, Workflow } from '../workflow/types.ts'
import type { Value } from '../values/codec.ts'

/**
 * What one request's DAG looks like from the events seen so far. Every peer holds one per request and
 * feeds it the same events, so every peer draws the same conclusions (which instances exist, which are
 * ready, which steps are skipped, whether the request is done) without asking anyone.
 */

/** A resolved input: where its value is, not yet the value itself (fetching is the scheduler's job). */
export type Resolved =
  | { kind: 'ref', ref: ValueRef }
  | { kind: 'list', items: Resolved[] }
  | { kind: 'element', of: ValueRef, index: number }
  | { kind: 'literal', value: Value }

export type Resolution = { state: 'pending' } | { state: 'skipped' } | { state: 'ready', value: Resolved }

const PENDING: Resolution = { state: 'pending' }
const SKIPPED: Resolution = { state: 'skipped' }

type OutputState =
  | { kind: 'value', ref: ValueRef }
  | { kind: 'stream', elements: Map<number, ValueRef>, closed?: number }

export interface InstanceRecord {
  step: string
  index: number | null
  /** request/step#index: unique across requests (load book, placement key) */
  gid: string
  /** claimant peer -> its latest claim */
  claims: Map<string, Claim>
  /** claims below this attempt are void (the instance was reset for a re-run) */
  floor: number
  done?: StepDone
  failed?: string
  /** the claim whose failure was accepted */
  failedBy?: { peer: string, attempt: number, incarnation: number }
  /** the winning claim as last computed (the scheduler keeps it current) */
  winner?: Claim & { peer: string }
  /** all its inputs exist (or it is eager and fired): it occupies a slot where it runs */
  runnable?: boolean
  /** when it became runnable, as this peer saw it (the queue model's start of its run) */
  runnableAt?: number
  /** the publisher's time of the latest output-ready of its winning run (how far into a run outputs come: history.recordPost) */
  lastPostTs?: number
  /** the input (position in the step's inputs) found pending when last checked: checked first next time */
  pendingInput?: number
  /** the peer placement expects to claim it, and since when (a silent one is passed over after a while) */
  expect?: { peer: string, since: number }
  /** since when this peer waits for the instance's placer (see Dispatcher.placerOf); the placer is passed over after a while */
  awaitingPlacer?: { peer: string, since: number }
  /** peers passed over for this instance because their expected claim never came */
  excluded?: Set<string>
  /** runner events that came from a claim not winning when they arrived (replayed if it comes to win) */
  held?: RunnerEvent[]
  /** this peer re-announced, under its own winning claim, the result it had accepted from another claim (adopt.ts) */
  adopted?: boolean
}

export type RunnerEvent = OutputReady | ElementPosted | StepDone | StepFailed

/** A claim: attempt, the claimant's incarnation, and when it was made (the claimant's clock). */
export interface Claim { attempt: number, incarnation: number, ts: number }

export type Tri = 'yes' | 'no' | 'unknown'

export const instanceKey = (step: string, index: number | null): string => `${step}#${index ?? ''}`

export class RequestState {
  readonly id: string
  readonly workflow: Workflow
  readonly started: RequestStarted
  readonly instances = new Map<string, InstanceRecord>()
  private readonly outputs = new Map<string, OutputState>()
  /** results of `when` conditions, evaluated by the scheduler once their value is known */
  private readonly conditions = new Map<string, boolean>()
  private readonly settledSkips = new Map<string, Tri>()
  /** instances with a failure accepted (firstFailure scans only when there is one) */
  private failures = 0
  /** instance records neither done nor failed: a hint that the request still runs (see mayBeEnding) */
  private unfinished = 0
  /** each step's input sources, in a fixed order (inputsReady keeps a position in it) */
  private readonly sourcesCache = new Map<string, Source[]>()
  /** a reason when something makes the request fail that is not a step's own failure */
  fatal?: string
  /** digest of the request-started event this state follows (runner events name it) */
  readonly startId: string
  /** `step.output` -> the steps reading it (as an input, a foreach source or a condition) */
  readonly readers = new Map<string, string[]>()

  constructor (workflow: Workflow, started: RequestStarted) {
    this.id = started.request
    this.workflow = workflow
    this.started = started
    this.startId = createHash('sha256').update(encodeEvent(started)).digest('hex').slice(0, 16)
    for (const name of Object.keys(workflow.steps)) {
      const step = workflow.steps[name]
      const refs: Ref[] = [...Object.values(step.in).flatMap(src => src.kind === 'oneOf' ? src.refs : [src])]
      if (step.foreach !== undefined) refs.push(step.foreach)
      if (step.when !== undefined) refs.push(step.when.ref)
      for (const ref of refs) {
        if (ref.kind !== 'step') continue
        const key = `${ref.step}.${ref.output}`
        const list = this.readers.get(key) ?? []
        if (!list.includes(name)) list.push(name)
        this.readers.set(key, list)
      }
    }
  }

  /** The steps that read any output of `step`. */
  readersOfStep (step: string): string[] {
    const out = new Set<string>()
    for (const o of this.step(step).out) for (const r of this.readers.get(`${step}.${o}`) ?? []) out.add(r)
    return [...out]
  }

  /** Instance records of a step that exist so far. */
  instancesOf (step: string): InstanceRecord[] {
    if (this.step(step).foreach === undefined) {
      const rec = this.instances.get(instanceKey(step, null))
      return rec === undefined ? [] : [rec]
    }
    const out: InstanceRecord[] = []
    for (const i of this.knownInstances(step)) out.push(this.instance(step, i))
    return out
  }

  step (name: string): StepDef {
    const s = this.workflow.steps[name]
    if (s === undefined) throw new Error(`unknown step ${name}`)
    return s
  }

  instance (step: string, index: number | null): InstanceRecord {
    const key = instanceKey(step, index)
    let rec = this.instances.get(key)
    if (rec === undefined) {
      rec = { step, index, gid: `${this.id}/${key}`, claims: new Map(), floor: 0 }
      this.instances.set(key, rec)
      this.unfinished++
    }
    return rec
  }

  // ---- facts from events -------------------------------------------------------------------------

  /** First value for a key wins: a re-run or a duplicate never replaces what consumers may have read. */
  recordOutput (step: string, index: number | null, output: string, ref: ValueRef): boolean {
    const key = `${instanceKey(step, index)}.${output}`
    if (this.outputs.has(key)) return false
    this.outputs.set(key, { kind: 'value', ref })
    return true
  }

  /** Whether an instance's output (value, or some element of a stream) exists. */
  hasOutput (step: string, index: number | null, output: string): boolean {
    return this.outputs.has(`${instanceKey(step, index)}.${output}`)
  }

  /** What was accepted of an instance's outputs: its values, and the elements of its streams. */
  outputsOf (step: string, index: number | null): { values: Record<string, ValueRef>, elements: Array<{ output: string, element: number, ref: ValueRef }> } {
    const values: Record<string, ValueRef> = {}
    const elements: Array<{ output: string, element: number, ref: ValueRef }> = []
    for (const output of this.step(step).out) {
      const st = this.outputs.get(`${instanceKey(step, index)}.${output}`)
      if (st?.kind === 'value') values[output] = st.ref
      else if (st?.kind === 'stream') for (const [element, ref] of st.elements) elements.push({ output, element, ref })
    }
    return { values, elements }
  }

  recordElement (step: string, index: number | null, output: string, element: number, ref: ValueRef): boolean {
    const key = `${instanceKey(step, index)}.${output}`
    let st = this.outputs.get(key)
    if (st === undefined) {
      st = { kind: 'stream', elements: new Map() }
      this.outputs.set(key, st)
    }
    if (st.kind !== 'stream' || st.elements.has(element)) return false
    st.elements.set(element, ref)
    return true
  }

  recordDone (ev: StepDone): boolean {
    const rec = this.instance(ev.step, ev.index)
    if (rec.done !== undefined || rec.failed !== undefined) return false
    rec.done = ev
    this.unfinished--
    for (const [output, count] of Object.entries(ev.streams)) {
      const key = `${instanceKey(ev.step, ev.index)}.${output}`
      let st = this.outputs.get(key)
      if (st === undefined) {
        st = { kind: 'stream', elements: new Map() }
        this.outputs.set(key, st)
      }
      if (st.kind === 'stream' && st.closed === undefined) st.closed = count
    }
    return true
  }

  recordFailed (step: string, index: number | null, error: string): boolean {
    const rec = this.instance(step, index)
    if (rec.done !== undefined || rec.failed !== undefined) return false
    rec.failed = error
    this.failures++
    this.unfinished--
    return true
  }

  /**
   * A value no live peer holds any more: forget every output that was it and reset the instances that
   * produced them, so they are claimed and run again (lineage recompute). Answers the reset instances, or
   * the name of a workflow input when the lost value was one (that cannot be recomputed).
   */
  forgetCid (cid: string): { reset: InstanceRecord[], input?: string } {
    for (const [name, ref] of Object.entries(this.started.inputs)) if (ref.cid === cid) return { reset: [], input: name }
    const reset = new Map<string, InstanceRecord>()
    for (const [key, st] of this.outputs) {
      const instKey = key.slice(0, key.lastIndexOf('.'))
      if (st.kind === 'value' && st.ref.cid === cid) this.outputs.delete(key)
      else if (st.kind === 'stream') {
        for (const [i, el] of st.elements) if (el.cid === cid) st.elements.delete(i)
        if (st.elements.size === (st.closed ?? -1)) continue
      } else continue
      const rec = this.instances.get(instKey)
      if (rec !== undefined) reset.set(instKey, rec)
    }
    for (const rec of reset.values()) {
      if (rec.done !== undefined) this.unfinished++
      rec.done = undefined
      rec.runnable = false
      rec.floor = Math.max(rec.floor, ...[...rec.claims.values()].map(c => c.attempt + 1))
    }
    return { reset: [...reset.values()] }
  }

  recordCondition (step: string, holds: boolean): void {
    this.conditions.set(step, holds)
  }

  hasCondition (step: string): boolean {
    return this.conditions.has(step)
  }

  // ---- resolution --------------------------------------------------------------------------------

  /**
   * What of a parameter's value exists so far, as value references: all of it once ready, else the parts
   * already produced (instances of a foreach producer, elements of a stream). Placement weighs these bytes.
   */
  partialRefs (src: Source, stepName: string, index: number | null): ValueRef[] {
    if (src.kind === 'oneOf') return src.refs.flatMap(r => this.partialRefs(r, stepName, index))
    const r = this.resolve(src, stepName, index)
    if (r.state === 'ready') return refsOf(r.value)
    if (src.kind !== 'step') return []
    const out: ValueRef[] = []
    if (this.step(src.step).foreach === undefined) {
      // one instance, one key: no walk over every output of the request (the dispatcher asks this for every
      // pending input of every touched instance; the walk was a third of a peer's CPU on a 219-step trace)
      const st = this.outputs.get(`${instanceKey(src.step, null)}.${src.output}`)
      if (st?.kind === 'value') out.push(st.ref)
      else if (st !== undefined) out.push(...st.elements.values())
      return out
    }
    for (const [key, st] of this.outputs) {
      const dot = key.lastIndexOf('.')
      if (key.slice(dot + 1) !== src.output || !key.startsWith(`${src.step}#`)) continue
      if (st.kind === 'value') out.push(st.ref)
      else out.push(...st.elements.values())
    }
    return out
  }

  /** The value an instance output stands for: a value, or a closed stream as the list of its elements. */
  private instanceOutput (step: string, index: number | null, output: string): Resolution {
    const st = this.outputs.get(`${instanceKey(step, index)}.${output}`)
    if (st === undefined) return PENDING
    if (st.kind === 'value') return { state: 'ready', value: { kind: 'ref', ref: st.ref } }
    if (st.closed === undefined) return PENDING
    const items: Resolved[] = []
    for (let i = 0; i < st.closed; i++) {
      const el = st.elements.get(i)
      if (el === undefined) return PENDING
      items.push({ kind: 'ref', ref: el })
    }
    return { state: 'ready', value: { kind: 'list', items } }
  }

  /** How many instances a foreach step has, once its source is complete. */
  foreachCount (stepName: string): number | undefined {
    const src = this.step(stepName).foreach
    if (src === undefined) return undefined
    if (src.kind === 'input') return this.started.inputs[src.name]?.length
    if (this.skipped(src.step) === 'yes') return 0
    const producer = this.step(src.step)
    if (producer.foreach !== undefined) return this.foreachCount(src.step)
    const st = this.outputs.get(`${instanceKey(src.step, null)}.${src.output}`)
    if (st === undefined) return undefined
    return st.kind === 'value' ? st.ref.length : st.closed
  }

  /** Whether foreach instance `i` of a step can exist yet (its element is known). */
  elementKnown (stepName: string, i: number): boolean {
    return this.resolveRef({ kind: 'item' }, stepName, i).state === 'ready'
  }

  /** Indices of the foreach instances whose elements are known so far. */
  knownInstances (stepName: string): number[] {
    const count = this.foreachCount(stepName)
    const out: number[] = []
    for (let i = 0; count === undefined || i < count; i++) {
      if (!this.elementKnown(stepName, i)) {
        if (count === undefined) break
        continue
      }
      out.push(i)
    }
    return out
  }

  resolveRef (ref: Ref, stepName: string, index: number | null): Resolution {
    switch (ref.kind) {
      case 'index': return index === null ? PENDING : { state: 'ready', value: { kind: 'literal', value: index } }
      case 'input': {
        const r = this.started.inputs[ref.name]
        return r === undefined ? PENDING : { state: 'ready', value: { kind: 'ref', ref: r } }
      }
      case 'item': {
        const src = this.step(stepName).foreach
        if (src === undefined || index === null) return PENDING
        if (src.kind === 'input') {
          const r = this.started.inputs[src.name]
          return r === undefined ? PENDING : { state: 'ready', value: { kind: 'element', of: r, index } }
        }
        if (this.skipped(src.step) === 'yes') return SKIPPED
        if (this.step(src.step).foreach !== undefined) return this.instanceOutput(src.step, index, src.output)
        const st = this.outputs.get(`${instanceKey(src.step, null)}.${src.output}`)
        if (st === undefined) return PENDING
        if (st.kind === 'value') return { state: 'ready', value: { kind: 'element', of: st.ref, index } }
        const el = st.elements.get(index)
        return el === undefined ? PENDING : { state: 'ready', value: { kind: 'ref', ref: el } }
      }
      case 'step': {
        if (this.skipped(ref.step) === 'yes') return SKIPPED
        const producer = this.step(ref.step)
        if (producer.foreach === undefined) return this.instanceOutput(ref.step, null, ref.output)
        const count = this.foreachCount(ref.step)
        if (count === undefined) return PENDING
        const items: Resolved[] = []
        for (let i = 0; i < count; i++) {
          const r = this.instanceOutput(ref.step, i, ref.output)
          if (r.state !== 'ready') return PENDING
          items.push(r.value)
        }
        return { state: 'ready', value: { kind: 'list', items } }
      }
    }
  }

  resolve (src: Source, stepName: string, index: number | null): Resolution {
    if (src.kind !== 'oneOf') return this.resolveRef(src, stepName, index)
    for (const ref of src.refs) {
      const r = this.resolveRef(ref, stepName, index)
      if (r.state === 'skipped') continue
      return r
    }
    return SKIPPED
  }

  /**
   * Whether every input of an instance resolves (none pending). A wide fan-in (a join of 100) is looked at once
   * per input that arrives: the input found pending last time is checked first, and only once it resolved are the
   * others scanned, from it on and round, so an event that changes nothing costs O(1) rather than O(inputs). The
   * answer is always that of a full scan: false needs a pending input, true a scan of all of them.
   */
  inputsReady (rec: InstanceRecord): boolean {
    let sources = this.sourcesCache.get(rec.step)
    if (sources === undefined) {
      sources = Object.values(this.step(rec.step).in)
      this.sourcesCache.set(rec.step, sources)
    }
    const n = sources.length
    const from = rec.pendingInput !== undefined && rec.pendingInput < n ? rec.pendingInput : 0
    for (let k = 0; k < n; k++) {
      const i = (from + k) % n
      if (this.resolve(sources[i], rec.step, rec.index).state === 'pending') {
        rec.pendingInput = i
        return false
      }
    }
    rec.pendingInput = undefined
    return true
  }

  // ---- skipping ----------------------------------------------------------------------------------

  /** Whether a step is skipped: its condition is false, or it needs a skipped step's output. */
  skipped (stepName: string): Tri {
    const settled = this.settledSkips.get(stepName)
    if (settled !== undefined) return settled
    const tri = this.computeSkipped(stepName)
    // 'yes' and 'no' never change once reached (conditions and skips are final), so they are cached;
    // this keeps the recursion linear on wide, deep DAGs.
    if (tri !== 'unknown') this.settledSkips.set(stepName, tri)
    return tri
  }

  private computeSkipped (stepName: string): Tri {
    const step = this.step(stepName)
    let unknown = false
    const needs = (ref: Ref): void => {
      if (ref.kind !== 'step') return
      const s = this.skipped(ref.step)
      if (s === 'yes') throw SKIP
      if (s === 'unknown') unknown = true
    }
    try {
      if (step.foreach !== undefined) needs(step.foreach)
      if (step.when !== undefined) needs(step.when.ref)
      for (const src of Object.values(step.in)) {
        if (src.kind !== 'oneOf') { needs(src); continue }
        const members = src.refs.map(r => r.kind === 'step' ? this.skipped(r.step) : 'no')
        if (members.every(m => m === 'yes')) throw SKIP
        if (members.includes('unknown')) unknown = true
      }
    } catch (err) {
      if (err === SKIP) return 'yes'
      throw err
    }
    if (step.when !== undefined) {
      const holds = this.conditions.get(stepName)
      if (holds === false) return 'yes'
      if (holds === undefined) return 'unknown'
    }
    return unknown ? 'unknown' : 'no'
  }

  // ---- progress ----------------------------------------------------------------------------------

  /** 'done' when every instance returned (a foreach step with all its instances), 'failed' when one failed. */
  stepStatus (stepName: string): 'pending' | 'skipped' | 'done' | 'failed' {
    if (this.skipped(stepName) === 'yes') return 'skipped'
    const step = this.step(stepName)
    const indices: Array<number | null> = []
    if (step.foreach === undefined) indices.push(null)
    else {
      const count = this.foreachCount(stepName)
      if (count === undefined) {
        for (const rec of this.instances.values()) if (rec.step === stepName && rec.failed !== undefined) return 'failed'
        return 'pending'
      }
      for (let i = 0; i < count; i++) indices.push(i)
    }
    let all = true
    for (const i of indices) {
      const rec = this.instances.get(instanceKey(stepName, i))
      if (rec?.failed !== undefined) return 'failed'
      if (rec?.done === undefined) all = false
    }
    return all ? 'done' : 'pending'
  }

  /** The steps a step reads from (for control mode: it starts when all of them returned). */
  predecessors (stepName: string): string[] {
    const step = this.step(stepName)
    const out = new Set<string>()
    const add = (ref: Ref): void => { if (ref.kind === 'step') out.add(ref.step) }
    if (step.foreach !== undefined) add(step.foreach)
    if (step.when !== undefined) add(step.when.ref)
    for (const src of Object.values(step.in)) {
      if (src.kind === 'oneOf') src.refs.forEach(add)
      else add(src)
    }
    return [...out]
  }

  firstFailure (): string | undefined {
    if (this.fatal !== undefined) return this.fatal
    if (this.failures === 0) return undefined
    for (const rec of this.instances.values()) {
      if (rec.failed !== undefined) return `step ${rec.step}${rec.index === null ? '' : `[${rec.index}]`} failed: ${rec.failed}`
    }
    return undefined
  }

  /**
   * True when outcome() is 'running' for sure: no failure yet and an instance record still unfinished; except
   * when every unfinished record belongs to a step found skipped since (then outcome() is 'ok': callers use
   * this only to delay, never to decide). False says nothing: ask outcome(). O(1), for questions asked on
   * every event (send slack), where outcome() walks the steps and firstFailure() every instance.
   */
  surelyRunning (): boolean {
    return this.fatal === undefined && this.failures === 0 && this.unfinished > 0
  }

  /** ok when every step is done or skipped and every workflow output resolved; failed on the first failure. */
  outcome (): { status: 'running' } | { status: 'failed', error: string } | { status: 'ok', outputs: Record<string, Resolved | null> } {
    const failure = this.firstFailure()
    if (failure !== undefined) return { status: 'failed', error: failure }
    for (const name of Object.keys(this.workflow.steps)) {
      const st = this.stepStatus(name)
      if (st === 'pending') return { status: 'running' }
    }
    const outputs: Record<string, Resolved | null> = {}
    for (const [name, src] of Object.entries(this.workflow.outputs)) {
      const r = this.resolve(src, '', null)
      if (r.state === 'pending') return { status: 'running' }
      outputs[name] = r.state === 'ready' ? r.value : null
    }
    return { status: 'ok', outputs }
  }
}

const SKIP = Symbol('skip')

function refsOf (r: Resolved): ValueRef[] {
  if (r.kind === 'ref') return [r.ref]
  if (r.kind === 'element') return [r.of]
  if (r.kind === 'list') return r.items.flatMap(refsOf)
  return []
}
