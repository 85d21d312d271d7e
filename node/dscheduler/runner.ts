import { setMaxListeners } from 'node:events'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AwaitablePush, DStore, ValueMeta } from '../dstore/types.ts'
import type { DflowEvent, ValueRef } from '../../protocols/events/index.ts'
import type { Value } from '../values/codec.ts'
import type { StepDef } from '../workflow/types.ts'
import { CID } from 'multiformats/cid'
import { LostValueError, materialize, storeValue } from './materialize.ts'
import { instanceKey, type RequestState, type Resolved } from './request-state.ts'
import type { FunctionPool, LoadedWorkflow } from './types.ts'
import type { FollowFn, InstanceSpec, InvokeOptions, InvokeResult } from '../executor/types.ts'
import { ChainDroppedError } from '../executor/errors.ts'

/** What a runner needs from its scheduler (kept narrow so the runner can be read on its own). */
export interface RunnerHost {
  self: string
  store: DStore & Partial<AwaitablePush>
  pool: FunctionPool
  publish: (event: DflowEvent) => Promise<void>
  /** resolves when the request state changed (or the signal aborted) */
  changed: (request: string, signal: AbortSignal) => Promise<void>
  /** peers that claimed consumers of this output, to push the value to ahead of their asking */
  consumersOf: (state: RequestState, step: string, output: string, element: number | null) => string[]
  /** whether membership holds a peer alive (a value is lost only when every holder is dead) */
  isLive: (peer: string) => boolean
  /** this runner's function started in an instance: consumers won here may follow it there (follow.ts) */
  running?: (runner: InstanceRunner) => void
  /** whether an instance this peer won, not fired yet, reads `step.output` (runner-host.ts) */
  awaitedHere?: (s: RequestState, step: string, output: string) => boolean
  /** when this runner's invocation should start at the latest (InvokeOptions.startBy), epoch ms */
  startBy?: (runner: InstanceRunner) => number | undefined
  /** a run started or ended here (for the request's run record) */
  ran: (runner: InstanceRunner, outcome: 'running' | 'done' | 'failed' | 'aborted') => void
  log: (line: string, ...args: unknown[]) => void
  logLine: (request: string, step: string, index: number | null, line: string) => void
}

/**
 * A run's stages on its peer, epoch ms (one host clock: the instance's times are the same machine's), each absent
 * until reached: its inputs all existed here (`readyAt`), it got a pool slot or a place behind a busy instance's
 * invocation (`slotAt`), it was sent to its instance with the inputs read (`postedAt`), the function was called and
 * returned (`startedAt`, `endedAt`, the instance's clock), its result reached the peer (`resultAt`), and its outputs
 * were stored and its step-done handed to the bus (`doneAt`: applied here at once; the send to the others may wait
 * to share a message). A consumer queued behind its producer has neither `readyAt` nor `slotAt`.
 */
export interface RunPhases {
  readyAt?: number
  slotAt?: number
  postedAt?: number
  startedAt?: number
  endedAt?: number
  resultAt?: number
  doneAt?: number
}

/**
 * One step instance this peer has won: fire, invoke (with retries), post outputs as they come
 * (dataflow) or at return (control), then report done or failed.
 */
export class InstanceRunner {
  readonly controller = new AbortController()
  readonly step: StepDef
  fired = false
  finished = false
  readyAt?: number
  /** where this run's time went (its RunRecord shows it): set as the stages happen, the last attempt's */
  readonly phases: RunPhases = {}
  /** the claim this runner runs under: every event it publishes carries it, and peers accept them only from the winner */
  fence: { attempt: number, incarnation: number, start?: string } = { attempt: 0, incarnation: 0 }
  /** its claim lost: it stops and publishes nothing more */
  superseded = false
  private posting: Promise<void> = Promise.resolve()
  private readonly held: Array<() => Promise<void>> = []
  /** while the function runs in an instance: queues a follower there (executor FollowFn) */
  private followFn?: FollowFn
  /** queued behind its producer, until the producer's instance starts it or gives it back */
  private link?: { cancel: () => void }

  constructor (private readonly host: RunnerHost, readonly state: RequestState, private readonly loaded: LoadedWorkflow,
    readonly stepName: string, readonly index: number | null) {
    this.step = state.step(stepName)
    // every pending ctx.input and fetch listens on this signal
    setMaxListeners(10_000, this.controller.signal)
  }

  /** what the step runs in: its module under its heap limit (the pool's instance key) */
  get spec (): InstanceSpec {
    return { code: this.loaded.functionOf(this.stepName).code, memoryMb: this.step.memoryMb }
  }

  abort (reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error(reason))
  }

  /** Another claim won the instance: stop the function (ctx.signal) and drop whatever it still produces. */
  supersede (): void {
    this.superseded = true
    this.abort('another claim won this instance')
  }

  /** Fire once; the promise settles when the instance is done or failed and the event is published. */
  fire (): void {
    if (this.fired) return
    this.readyAt ??= Date.now()
    this.start()
  }

  private start (lead?: { follow: FollowFn, from: Record<string, string> }): void {
    this.fired = true
    this.host.ran(this, 'running')
    void this.run(lead).then(() => {
      this.host.ran(this, this.superseded || this.controller.signal.aborted ? 'aborted' : this.failed ? 'failed' : 'done')
    })
  }

  /** whether a consumer may be queued behind this runner's function now (follow.ts) */
  get canLead (): boolean {
    return this.followFn !== undefined && !this.leads && !this.finished && !this.superseded && this.index === null
  }

  /** a consumer was queued behind this invocation (one at most: the instance runs one after the other) */
  private leads = false

  /** whether this runner waits behind its producer, queued in the producer's instance */
  get linked (): boolean {
    return this.link !== undefined
  }

  /**
   * Fires queued behind `producer` in its instance, with inputs `from` its outputs (input name -> output name).
   * If the link does not hold (the producer fails, another instance is needed), it is invoked as usual.
   */
  follow (producer: InstanceRunner, from: Record<string, string>): void {
    const follow = producer.followFn
    const a = producer.spec
    const b = this.spec
    if (this.fired || !producer.canLead || follow === undefined || a.code.cid !== b.code.cid || a.memoryMb !== b.memoryMb) return
    producer.leads = true
    this.start({ follow, from })
  }

  /** Its inputs exist another way now: stop waiting behind the producer (it fires as usual if the link is dropped). */
  unlink (): void {
    this.link?.cancel()
  }

  private failed = false
  /** an output's event that could not be published (the attempt fails on it) */
  private postError: unknown

  private meta (output: string, element: number | null): ValueMeta {
    return { request: this.state.id, step: this.stepName, output, index: element ?? this.index }
  }

  private async post (output: string, value: Value, element: number | null, seq = 0): Promise<void> {
    const { state, host } = this
    const ref = await storeValue(host.store, value, host.self, { pin: state.id, meta: this.meta(output, element) })
    const cid = CID.parse(ref.cid)
    const central = state.started.store === 'central' ? state.started.submitter : undefined
    if (central !== undefined && central !== host.self && ref.inline === undefined && host.store.push !== undefined) {
      await host.store.push(peerIdFromString(central), cid, this.meta(output, element), this.controller.signal)
      ref.holders = [central]
    }
    if (this.superseded) return
    const base = { from: host.self, ts: Date.now(), request: state.id, step: this.stepName, index: this.index, output, ...this.fence }
    if (element === null) this.announce(output, ref, seq)
    else {
      // applied here at once and sent in publish order by the bus: the next post does not wait for the network.
      // Awaiting the send made a stream's elements wait one gossip send each (wordcount's 3 elements: ~50 ms on a
      // busy 4-peer testnet, most of its latency). A publish that fails (it cannot be encoded) fails the attempt.
      host.publish({ type: 'element-posted', ...base, element, value: ref }).catch((err: unknown) => { this.postError ??= err })
    }
    if (ref.inline === undefined && central === undefined && state.started.mode === 'dataflow') {
      for (const peer of host.consumersOf(state, this.stepName, output, element)) {
        if (peer !== host.self) host.store.pushTo(peerIdFromString(peer), cid, this.meta(output, element))
      }
    }
  }

  /**
   * A posted value is announced ANNOUNCE_COALESCE_MS later, unless the function returned by then: functions
   * often post their last outputs right before they return, and those then go out inside the step-done (one
   * signed message instead of one per output and one for the done). A testnet fan showed 40% of outputs
   * missing setImmediate by the width of the worker's return message.
   */
  private announce (output: string, ref: ValueRef, seq: number): void {
    this.unannounced.push({ output, ref })
    // the instance said the function went on running after posting it: no return is coming to carry it
    if (seq <= this.midRunUpTo) { this.flushAnnounced(); return }
    // a consumer this peer won waits for it: it starts now, not after the coalescing timer (which fired 4-8 ms later
    // on an idle testnet peer, most of a local hand-off of a mid-run post). Not while a consumer is queued behind this
    // function (follow.ts): seeing the value now would take it back from the instance that runs it next (cycles: +25%)
    if (!this.leads && this.host.awaitedHere?.(this.state, this.stepName, output) === true) { this.flushAnnounced(); return }
    if (this.announcing) return
    this.announcing = true
    setTimeout(() => {
      this.announcing = false
      if (!this.returned) this.flushAnnounced()
    }, ANNOUNCE_COALESCE_MS)
  }

  /** Publishes the values not announced yet, each as its own output-ready. */
  private flushAnnounced (): void {
    const { host, state } = this
    for (const { output, ref } of this.unannounced.splice(0)) {
      if (this.superseded) return
      void host.publish({ type: 'output-ready', from: host.self, ts: Date.now(), request: state.id, step: this.stepName, index: this.index, output, ...this.fence, value: ref })
    }
  }

  private readonly unannounced: Array<{ output: string, ref: ValueRef }> = []
  /** value outputs handed to this runner so far (dataflow), and how many of them the instance said were mid-run */
  private enqueued = 0
  private midRunUpTo = 0

  /**
   * The outputs posted so far were posted mid-run (the instance's `mid-run`): those already stored are announced
   * now rather than after ANNOUNCE_COALESCE_MS, which on a busy peer fired 7-11 ms late, and those still being
   * stored as soon as they are. A chain of mid-run posts (postAt 0.5) paid that wait at every level.
   */
  private midRun (): void {
    if (this.state.started.mode !== 'dataflow' || this.returned) return
    this.midRunUpTo = this.enqueued
    if (this.unannounced.length > 0) this.flushAnnounced()
  }
  private announcing = false
  private returned = false

  /** Dataflow posts at once (in order); control holds everything until the function returns. */
  private enqueue (output: string, value: Value, element: number | null): void {
    const seq = element === null ? ++this.enqueued : 0
    const job = async (): Promise<void> => { await this.post(output, value, element, seq) }
    if (this.state.started.mode === 'control') { this.held.push(job); return }
    this.posting = this.posting.then(job)
  }

  /**
   * The inputs that exist now and need no message to read (inline values, literals, values held here or in a
   * shared file on this host, lists of them), decoded: they go out with the invocation. Asked for by ctx.input,
   * each cost a round trip through the instance's channel, which on a busy host took longer than the read
   * (bench cycles: 5 ms p50 child -> peer, then the value back). Others (values elsewhere, inputs still pending,
   * beyond PRELOAD_BYTES in all) are asked for by ctx.input as before. `inline`: literals, inline values and
   * skipped inputs only (no store read); `stored`: the others only.
   */
  private async preloaded (what: 'inline' | 'stored' | 'all'): Promise<Record<string, Value> | undefined> {
    let out: Record<string, Value> | undefined
    let budget = PRELOAD_BYTES
    for (const [name, src] of Object.entries(this.step.in)) {
      const r = this.state.resolve(src, this.stepName, this.index)
      if (r.state === 'skipped') { if (what !== 'stored') (out ??= {})[name] = null; continue }
      if (r.state !== 'ready') continue
      const bytes = bytesToRead(this.host.store, r.value)
      if (bytes === 0 ? what === 'stored' : what === 'inline' || !preloadNearby()) continue
      if (bytes === undefined || bytes > budget) continue
      budget -= bytes
      // a failed read (lost, a bad foreach source) is left to ctx.input, which retries, asks for a re-run or
      // fails the step as the function asks for it, like any other input error
      try { (out ??= {})[name] = await materialize(this.host.store, r.value, { signal: this.controller.signal, pin: this.state.id }) } catch {}
    }
    return out
  }

  private async input (name: string): Promise<Value> {
    const src = this.step.in[name]
    if (src === undefined) {
      throw new Error(`step ${this.stepName} has no input "${name}" (declared: ${Object.keys(this.step.in).join(', ') || 'none'})`)
    }
    const signal = this.controller.signal
    for (;;) {
      const r = this.state.resolve(src, this.stepName, this.index)
      if (r.state === 'ready') {
        try {
          return await materialize(this.host.store, r.value, { signal, pin: this.state.id })
        } catch (err) {
          if (!(err instanceof LostValueError)) throw err
          if (holdersOf(r.value, err.cid).some(h => this.host.isLive(h))) {
            // a holder is alive: the fetch failed for another reason (slow, busy, a blip); try again shortly
            this.host.log('%s: input %s not fetched yet (%s); a holder is alive, retrying', this.stepName, name, err.cid)
            await sleep(RETRY_FETCH_MS, signal)
            continue
          }
          // every holder is dead as membership sees it: ask for the producer to run again, wait for the value
          this.host.log('%s: input %s lost (%s); asking for a re-run of its producer', this.stepName, name, err.cid)
          await this.host.publish({ type: 'value-lost', from: this.host.self, ts: Date.now(), request: this.state.id, cid: err.cid })
        }
      }
      if (r.state === 'skipped') return null
      await this.host.changed(this.state.id, signal)
      signal.throwIfAborted()
    }
  }

  /** whether every input of this instance exists now (an eager step fires before they do) */
  private inputsAllExist (): boolean {
    const rec = this.state.instances.get(instanceKey(this.stepName, this.index))
    return rec !== undefined && this.state.inputsReady(rec)
  }

  private async inputsExist (): Promise<void> {
    const signal = this.controller.signal
    const rec = this.state.instances.get(instanceKey(this.stepName, this.index))
    while (rec !== undefined && !this.state.inputsReady(rec)) {
      await this.host.changed(this.state.id, signal)
      signal.throwIfAborted()
    }
    this.readyAt = Date.now()
  }

  /** The first attempt, queued behind the producer; undefined when the link did not hold (nothing ran). */
  private async afterProducer (lead: { follow: FollowFn, from: Record<string, string> }, opts: InvokeOptions): Promise<InvokeResult | undefined> {
    // a follower waits in its producer's instance, one per instance: its values are read now
    const preloaded = await this.preloaded('all')
    this.phases.postedAt = Date.now()
    const h = lead.follow({ ...opts, preloaded }, lead.from)
    if (h === undefined) return undefined
    this.link = h
    try {
      return await h.result.finally(() => { this.link = undefined })
    } catch (err) {
      if (err instanceof ChainDroppedError) return undefined
      throw err
    }
  }

  private async run (lead?: { follow: FollowFn, from: Record<string, string> }): Promise<void> {
    const { host, state } = this
    const { code, exportName } = this.loaded.functionOf(this.stepName)
    const attempts = this.step.retries + 1
    let lastError = ''
    for (let attempt = 1; attempt <= attempts && !this.controller.signal.aborted; attempt++) {
      try {
        const opts: InvokeOptions = {
          spec: { code, memoryMb: this.step.memoryMb },
          exportName,
          request: { id: state.id, workflow: this.loaded.cid },
          step: { name: this.stepName, index: this.index },
          outputs: this.step.out,
          timeoutMs: this.step.timeoutMs,
          signal: this.controller.signal,
          startBy: host.startBy?.(this),
          input: async (name: string) => this.input(name),
          inputReady: (name: string) => {
            const src = this.step.in[name]
            return src === undefined || this.state.resolve(src, this.stepName, this.index).state !== 'pending'
          },
          onOutput: (name: string, value: Value) => { this.enqueue(name, value, null) },
          onMidRun: () => { this.midRun() },
          onEmit: (name: string, element: number, value: Value) => { this.enqueue(name, value, element) },
          onLog: (line: string) => { host.logLine(state.id, this.stepName, this.index, line) },
          onPhase: (phase, at) => { if (phase === 'slot') this.phases.slotAt = at; else this.phases.postedAt = at },
          onRunning: (follow: FollowFn) => {
            this.followFn = follow
            this.leads = false
            host.running?.(this)
          }
        }
        let result: InvokeResult | undefined
        try {
          if (lead !== undefined && attempt === 1) {
            result = await this.afterProducer(lead, opts)
            // the link did not hold: fire as if it never was, once the inputs exist (no instance held meanwhile)
            if (result === undefined) await this.inputsExist()
          }
          // values read from the store only once the slot is there (the pool calls preload): a queued invocation holds none
          result ??= await host.pool.invoke({ ...opts, queueInInstance: queueInInstance() && this.inputsAllExist(), preloaded: await this.preloaded('inline'), preload: async () => await this.preloaded('stored') })
        } finally {
          this.followFn = undefined
        }
        this.returned = true
        // a consumer queued behind its producer has no readyAt of its own: it started when the producer returned
        Object.assign(this.phases, { readyAt: this.readyAt, startedAt: result.startedAt, endedAt: result.endedAt, resultAt: Date.now() })
        for (const job of this.held.splice(0)) this.posting = this.posting.then(job)
        await this.posting
        if (this.postError !== undefined) throw this.postError
        if (this.superseded) { this.finished = true; return }
        const outputs = Object.fromEntries(this.unannounced.splice(0).map(({ output, ref }) => [output, ref]))
        // handed to the bus: applied here at once; the send to the others may wait to share a message (send slack)
        this.phases.doneAt = Date.now()
        await host.publish({
          type: 'step-done',
          from: host.self,
          ts: Date.now(),
          request: state.id,
          step: this.stepName,
          index: this.index,
          ...this.fence,
          streams: result.streams,
          coldStartMs: result.coldStartMs,
          readyAt: this.readyAt ?? result.startedAt,
          startAt: result.startedAt,
          endAt: result.endedAt,
          ...(Object.keys(outputs).length > 0 ? { outputs } : {})
        })
        this.finished = true
        return
      } catch (err) {
        this.held.length = 0
        await this.posting.catch(() => {})
        this.posting = Promise.resolve()
        this.postError = undefined
        // what a failed attempt posted mid-run was visible at once before; it still is
        this.returned = false
        this.flushAnnounced()
        lastError = describeFailure(err)
        host.log('%s[%s] attempt %d/%d failed: %s', this.stepName, this.index ?? '', attempt, attempts, lastError)
      }
    }
    this.finished = true
    this.failed = true
    if (this.controller.signal.aborted || this.superseded) return
    await host.publish({ type: 'step-failed', from: host.self, ts: Date.now(), request: state.id, step: this.stepName, index: this.index, ...this.fence, error: lastError })
  }
}

const RETRY_FETCH_MS = 500
/** How long a posted output waits for its function to return, so that it can ride in the step-done, ms. */
const ANNOUNCE_COALESCE_MS = 2

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
  signal.throwIfAborted()
}

/** what preloading may read for one invocation, in all (a larger input is asked for when the function reads it) */
const PRELOAD_BYTES = 16 * 1024 * 1024
/** DFLOW_QUEUE_IN_INSTANCE=0: an invocation waiting for a slot waits in the pool's queue only (A/B runs) */
const queueInInstance = (): boolean => process.env.DFLOW_QUEUE_IN_INSTANCE !== '0'
/** DFLOW_PRELOAD=0 preloads inline values only, as before (A/B runs) */
const preloadNearby = (): boolean => process.env.DFLOW_PRELOAD !== '0'

/**
 * The bytes the store reads to give a resolved input with no message (0 for literals and inline values);
 * undefined when some part of it is only elsewhere.
 */
function bytesToRead (store: DStore, r: Resolved): number | undefined {
  const ofRef = (ref: ValueRef): number | undefined => {
    if (ref.inline !== undefined) return 0
    if (store.nearby === undefined) return undefined
    let cid: CID
    try { cid = CID.parse(ref.cid) } catch { return undefined }
    return store.nearby(cid, ref.holders) ? ref.size : undefined
  }
  switch (r.kind) {
    case 'literal': return 0
    case 'ref': return ofRef(r.ref)
    case 'element': return ofRef(r.of)
    case 'list': {
      let sum = 0
      for (const item of r.items) {
        const n = bytesToRead(store, item)
        if (n === undefined) return undefined
        sum += n
      }
      return sum
    }
  }
}

/** The peers named as holders of `cid` anywhere in a resolved input. */
export function holdersOf (r: Resolved, cid: string): string[] {
  switch (r.kind) {
    case 'ref': return r.ref.cid === cid ? r.ref.holders : []
    case 'element': return r.of.cid === cid ? r.of.holders : []
    case 'list': return r.items.flatMap(item => holdersOf(item, cid))
    case 'literal': return []
  }
}

/** The function's own message (and stack, for a throw); the step's name is added by whoever reports it. */
function describeFailure (err: unknown): string {
  const e = err as { message?: string, functionMessage?: string, functionStack?: string }
  if (typeof e.functionMessage === 'string') {
    return e.functionStack !== undefined && e.functionStack !== '' ? `${e.functionMessage}\n${e.functionStack}` : e.functionMessage
  }
  return (e.message ?? String(err)).replace(/^step [^:\s]+: /, '')
}
