import { afterEach, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { defaultLogger } from '@libp2p/logger'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { BundleLoader } from '../../node/dscheduler/loader.ts'
import { DScheduler } from '../../node/dscheduler/scheduler.ts'
import { DStoreService } from '../../node/dstore/dstore.ts'
import { WorkerPool } from '../../node/executor/pool.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { cidOfBytes, encodeValue } from '../../node/values/codec.ts'
import type { Membership } from '../../node/dscheduler/types.ts'
import type { DflowEvent, ValueRef } from '../../protocols/events/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const SELF = 'self-peer'
const GHOST = 'ghost-peer'

/**
 * One scheduler whose bus also carries events "from" another peer that this test writes by hand: a
 * stale attempt, a duplicate's failure, a takeover. The other peer is live (its claims count) but never
 * offered work (placement sees only this peer), so every claim it makes is the test's.
 */
async function setup (incarnations = new Map<string, number>(), opts: { live?: string[], claimTimeoutMs?: number } = {}): Promise<{ sched: DScheduler, bus: LocalBus, stop: () => Promise<void>, inject: (ev: DflowEvent) => Promise<void> }> {
  const logger = defaultLogger()
  const store = new DStoreService({ logger })
  const pool = new WorkerPool({ slots: 2 })
  const loader = new BundleLoader(store)
  const bus = new LocalBus()
  const membership: Membership = { live: () => opts.live ?? [SELF], isLive: () => true, incarnation: 1, incarnationOf: p => incarnations.get(p), lastHeard: () => Date.now() }
  const sched = new DScheduler({ self: SELF, bus, store, pool, loader, membership, logger }, { slots: 2, leaseMs: 0, ...(opts.claimTimeoutMs !== undefined ? { claimTimeoutMs: opts.claimTimeoutMs } : {}) })
  await store.start()
  await bus.start()
  await sched.start()
  return {
    sched,
    bus,
    inject: async ev => { await bus.publish(ev); await new Promise(resolve => setTimeout(resolve, 20)) },
    stop: async () => { await sched.stop(); await bus.stop(); await pool.stop(); await store.stop() }
  }
}

async function inlineRef (value: unknown): Promise<ValueRef> {
  const bytes = encodeValue(value as never)
  return { cid: (await cidOfBytes(bytes)).toString(), size: bytes.byteLength, holders: [GHOST], inline: bytes }
}

async function until (what: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('fencing: results only from the winning claim', () => {
  let stop: (() => Promise<void>) | undefined
  afterEach(async () => { await stop?.() })

  it('a stale or losing claim\'s output and failure are ignored; a takeover supersedes the running winner, whose ctx.signal aborts', async () => {
    const env = await setup()
    stop = env.stop
    const { sched, inject } = env
    const file = await loadWorkflow(fixture('cancel.yaml'))
    const workflow = await (sched.c.loader as BundleLoader).register(file)
    const request = await sched.submit({ workflow, inputs: {}, requestId: 'fenced-1' })
    await until(() => sched.logsOf(request).some(l => l.line === 'waiting'))
    const mine = sched.runsOf(request)[0]
    const base = { from: GHOST, request, step: 'wait', index: null }

    // a claim made after ours at the same attempt loses: its output and its failure count for nothing
    await inject({ type: 'output-ready', ...base, ts: Date.now(), attempt: mine.attempt, incarnation: 7, output: 'x', value: await inlineRef('forged') })
    await inject({ type: 'step-failed', ...base, ts: Date.now(), attempt: mine.attempt, incarnation: 7, error: 'a duplicate failed' })
    expect(sched.metrics.fencedDrops).toBe(2)
    expect((await sched.view(request))?.status).toBe('running')
    expect(sched.runsOf(request)[0].outcome).toBe('running')

    // a takeover (higher attempt) wins: our runner is superseded, its function sees ctx.signal abort
    await inject({ type: 'step-claimed', ...base, ts: Date.now(), attempt: mine.attempt + 1, incarnation: 7 })
    await until(() => sched.runsOf(request)[0].outcome === 'aborted')
    expect(sched.metrics.claimsLost).toBe(1)
    await until(() => sched.logsOf(request).some(l => l.line === 'saw abort'))

    // the winner's results are taken; an event of the superseded attempt still is not
    await inject({ type: 'output-ready', ...base, from: SELF, ts: Date.now(), attempt: mine.attempt, incarnation: 1, output: 'x', value: await inlineRef('stale') })
    expect(sched.metrics.fencedDrops).toBe(3)
    await inject({ type: 'output-ready', ...base, ts: Date.now(), attempt: mine.attempt + 1, incarnation: 7, output: 'x', value: await inlineRef('from the winner') })
    await inject({ type: 'step-done', ...base, ts: Date.now(), attempt: mine.attempt + 1, incarnation: 7, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 })
    await sched.waitFinished(request)
    const view = await sched.view(request)
    expect(view?.status).toBe('ok')
    expect(view?.outputs).toEqual({ x: 'from the winner' })
    expect(view?.steps.find(s => s.name === 'wait')?.peer).toBe(GHOST)
    // exactly one run here, ended by the takeover
    expect(sched.runsOf(request).map(r => r.outcome)).toEqual(['aborted'])
  })

  it('results that arrived before their (earlier) claim count once that claim is heard and wins', async () => {
    const env = await setup()
    stop = env.stop
    const { sched, inject } = env
    const file = await loadWorkflow(fixture('cancel.yaml'))
    const workflow = await (sched.c.loader as BundleLoader).register(file)
    const request = await sched.submit({ workflow, inputs: {}, requestId: 'fenced-3' })
    await until(() => sched.logsOf(request).some(l => l.line === 'waiting'))
    const base = { from: GHOST, request, step: 'wait', index: null, attempt: 0, incarnation: 7 }
    // the ghost's results come first; the claim they imply is later than ours, so they are held, not applied
    await inject({ type: 'output-ready', ...base, ts: Date.now(), output: 'x', value: await inlineRef('ghost ran it') })
    await inject({ type: 'step-done', ...base, ts: Date.now(), streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1 })
    expect(sched.metrics.fencedDrops).toBe(2)
    expect((await sched.view(request))?.status).toBe('running')
    // then its claim arrives: made before ours, it wins; our run stops and the held results count
    await inject({ type: 'step-claimed', ...base, ts: 1 })
    await sched.waitFinished(request)
    const view = await sched.view(request)
    expect(view?.status).toBe('ok')
    expect(view?.outputs).toEqual({ x: 'ghost ran it' })
    expect(sched.runsOf(request).map(r => r.outcome)).toEqual(['aborted'])
  })

  it('an earlier claim wins over ours; a claimant\'s newer incarnation voids its old claim and ours runs again', async () => {
    const incarnations = new Map<string, number>()
    const env = await setup(incarnations)
    stop = env.stop
    const { sched, inject } = env
    const file = await loadWorkflow(fixture('cancel.yaml'))
    const workflow = await (sched.c.loader as BundleLoader).register(file)
    const request = await sched.submit({ workflow, inputs: {}, requestId: 'fenced-2' })
    await until(() => sched.runsOf(request).some(r => r.outcome === 'running'))
    // the ghost's claim on the same attempt was made first (its event was slow): it wins, ours yields
    await inject({ type: 'step-claimed', from: GHOST, request, step: 'wait', index: null, ts: 1, attempt: 0, incarnation: 3 })
    await until(() => sched.runsOf(request)[0].outcome === 'aborted')
    expect((await sched.view(request))?.steps[0].peer).toBe(GHOST)
    // the ghost restarted (incarnation 4): its old claim is void, our claim wins again and runs anew
    incarnations.set(GHOST, 4)
    sched.repumpAll()
    await until(() => sched.runsOf(request).length === 2 && sched.runsOf(request)[1].outcome === 'running')
    expect((await sched.view(request))?.steps[0].peer).toBe(SELF)
    await sched.cancel(request)
    await sched.waitFinished(request)
    expect((await sched.view(request))?.status).toBe('failed')
  })
})

describe('one request id, two starts', () => {
  let stop: (() => Promise<void>) | undefined
  afterEach(async () => { await stop?.() })

  it('converges on the earliest start whatever order the starts arrive in; a later one is ignored', async () => {
    const env = await setup()
    stop = env.stop
    const { sched, inject } = env
    const file = await loadWorkflow(fixture('dataflow.yaml'))
    const workflow = await (sched.c.loader as BundleLoader).register(file)
    const request = await sched.submit({ workflow, inputs: { n: 1 }, requestId: 'twice' })
    await until(() => sched.requests.get(request)?.state !== undefined)
    const mine = sched.eventsOf(request).find(e => e.type === 'request-started')
    if (mine?.type !== 'request-started') throw new Error('no start')
    const bytes = encodeValue(41)
    const input: ValueRef = { cid: (await cidOfBytes(bytes)).toString(), size: bytes.byteLength, holders: [GHOST], inline: bytes }
    // a start made later than ours (another submitter, same id) loses everywhere
    await inject({ ...mine, from: GHOST, submitter: GHOST, ts: mine.ts + 5, inputs: { n: input } })
    expect((await sched.view(request))?.submitter).toBe(SELF)
    // our start's consumer already produced its result (n = 1: 3) while its producer still works
    await until(() => sched.runsOf(request).some(r => r.step === 'consume' && r.outcome === 'done'))
    // one made earlier wins: this peer drops what it ran and follows that one; nothing of ours counts for it
    await inject({ ...mine, from: GHOST, submitter: GHOST, ts: mine.ts - 5, inputs: { n: input } })
    await until(() => sched.requests.get(request)?.state?.started.from === GHOST)
    await sched.waitFinished(request)
    const view = await sched.view(request)
    expect(view?.submitter).toBe(GHOST)
    // dataflow.yaml: result = 2n + 1
    expect(view?.outputs).toEqual({ result: 83 })
  })
})

describe('placement by the instance\'s placer', () => {
  let stop: (() => Promise<void>) | undefined
  afterEach(async () => { await stop?.() })

  it('waits for the placer\'s steps-assigned, runs what it assigns here, takes the assignee\'s results for what it assigns elsewhere', async () => {
    // the placer's wait outlasts the test; and were this peer to place on its own, it would pick itself (the
    // only candidate), so any run before an assignment shows it did not wait for the placer
    const env = await setup(new Map([[GHOST, 7]]), { claimTimeoutMs: 600_000 })
    stop = env.stop
    const { sched, inject } = env
    const file = await loadWorkflow(fixture('dataflow.yaml'))
    const workflow = await (sched.c.loader as BundleLoader).register(file)
    const started = async (request: string): Promise<void> => {
      await inject({ type: 'request-started', from: GHOST, ts: Date.now(), request, workflow, inputs: { n: await inlineRef(20) }, mode: 'dataflow', store: 'distributed', submitter: GHOST })
      await until(() => sched.requests.get(request)?.state !== undefined)
    }

    // 1. the request started at the ghost, so the ghost places `produce` (it reads only workflow inputs)
    await started('assigned-here')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(sched.runsOf('assigned-here')).toEqual([])
    expect(sched.eventsOf('assigned-here').some(e => e.type === 'step-claimed' || e.type === 'steps-assigned')).toBe(false)
    // it assigns `produce` here: this peer runs it, then places `consume` itself (it won the producer)
    await inject({ type: 'steps-assigned', from: GHOST, ts: Date.now(), request: 'assigned-here', claims: [{ step: 'produce', index: null, attempt: 0, peer: SELF, incarnation: 1 }] })
    await sched.waitFinished('assigned-here')
    expect((await sched.view('assigned-here'))?.outputs).toEqual({ result: 41 })
    expect(sched.runsOf('assigned-here').map(r => r.step).sort()).toEqual(['consume', 'produce'])

    // 2. the ghost assigns `produce` to itself: this peer does not run it, takes its results, and waits for the
    // ghost (now the winner of `consume`'s producer) to place `consume`, here
    await started('assigned-there')
    await inject({ type: 'steps-assigned', from: GHOST, ts: Date.now(), request: 'assigned-there', claims: [{ step: 'produce', index: null, attempt: 0, peer: GHOST, incarnation: 7 }] })
    const base = { from: GHOST, request: 'assigned-there', step: 'produce', index: null, attempt: 0, incarnation: 7 }
    await inject({ type: 'step-done', ...base, ts: Date.now(), streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1, outputs: { value: await inlineRef(100), extra: await inlineRef('late') } })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(sched.runsOf('assigned-there')).toEqual([])
    await inject({ type: 'steps-assigned', from: GHOST, ts: Date.now(), request: 'assigned-there', claims: [{ step: 'consume', index: null, attempt: 0, peer: SELF, incarnation: 1 }] })
    await sched.waitFinished('assigned-there')
    expect((await sched.view('assigned-there'))?.outputs).toEqual({ result: 101 })
    expect(sched.runsOf('assigned-there').map(r => r.step)).toEqual(['consume'])
  })

  it('claims of instances whose data is all here stay quiet: their step-done carries the claim; one still running is claimed aloud later', async () => {
    // a claim timeout far beyond the run: nothing may be said aloud, however slow the machine
    const env = await setup(new Map(), { claimTimeoutMs: 600_000 })
    stop = env.stop
    const { sched } = env
    const chain = await (sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('dataflow.yaml')))
    const quiet = await sched.submit({ workflow: chain, inputs: { n: 3 }, requestId: 'quiet-chain' })
    await sched.waitFinished(quiet)
    expect((await sched.view(quiet))?.outputs).toEqual({ result: 7 })
    expect(sched.eventsOf(quiet).filter(e => e.type === 'step-claimed' || e.type === 'steps-assigned')).toEqual([])

    // a step that keeps running past half the claim timeout is claimed aloud, with the time the claim was made
    const env2 = await setup(new Map(), { claimTimeoutMs: 200 })
    stop = async () => { await env.stop(); await env2.stop() }
    const s2 = env2.sched
    const waiting = await (s2.c.loader as BundleLoader).register(await loadWorkflow(fixture('cancel.yaml')))
    const long = await s2.submit({ workflow: waiting, inputs: {}, requestId: 'quiet-long' })
    await until(() => s2.eventsOf(long).some(e => e.type === 'step-claimed'))
    const claim = s2.eventsOf(long).find(e => e.type === 'step-claimed')
    const run = s2.runsOf(long)[0]
    expect(claim).toMatchObject({ step: 'wait', attempt: run.attempt })
    expect(claim!.ts).toBeLessThanOrEqual(run.firedAt)
    await s2.cancel(long)
    await s2.waitFinished(long)
  })

  it('a peer busier than a chain says its quiet claims aloud at once, so other placers count its load', async () => {
    // the same far claim timeout: only the load rule can make these claims public
    const env = await setup(new Map(), { claimTimeoutMs: 600_000 })
    stop = env.stop
    const { sched } = env
    const wf = await (sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('foreach-list.yaml')))
    const id = await sched.submit({ workflow: wf, inputs: { xs: [1, 2, 3, 4, 5] }, requestId: 'busy-fan' })
    await sched.waitFinished(id)
    const claimed = new Set<number | null>()
    for (const e of sched.eventsOf(id)) {
      if (e.type !== 'step-claimed') continue
      for (const c of [e, ...(e.also ?? [])]) if (c.step === 'double') claimed.add(c.index)
    }
    // all five siblings were placed in one walk: the first two quietly, then the third made this peer busy
    expect([...claimed].sort()).toEqual([0, 1, 2, 3, 4])
  })
})

describe('results heard after the request-done', () => {
  let stop: (() => Promise<void>) | undefined
  afterEach(async () => { await stop?.() })

  it('a step-done that the request-done overtook still ends the view and the record; a losing claim\'s does not', async () => {
    // this peer only watches: the ghost submits, places every step on itself and runs them
    const env = await setup(new Map([[GHOST, 7]]), { claimTimeoutMs: 600_000 })
    stop = env.stop
    const { sched, inject } = env
    const settling: string[] = []
    sched.addEventListener('scheduler:request-settling', ev => { settling.push(`settling ${ev.detail}`) })
    sched.addEventListener('scheduler:request-settled', ev => { settling.push(`settled ${ev.detail}`) })
    const workflow = await (sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('dataflow.yaml')))
    const request = 'overtaken'
    await inject({ type: 'request-started', from: GHOST, ts: Date.now(), request, workflow, inputs: { n: await inlineRef(20) }, mode: 'dataflow', store: 'distributed', submitter: GHOST })
    await until(() => sched.requests.get(request)?.state !== undefined)
    const claimed = Date.now()
    await inject({ type: 'steps-assigned', from: GHOST, ts: claimed, request, claims: [{ step: 'produce', index: null, attempt: 0, peer: GHOST, incarnation: 7 }, { step: 'consume', index: null, attempt: 0, peer: GHOST, incarnation: 7 }] })
    const done = (step: string, from: string, incarnation: number) => ({ type: 'step-done' as const, from, request, step, index: null, attempt: 0, incarnation, ts: Date.now(), streams: {}, coldStartMs: 0, readyAt: 0, startAt: 1, endAt: 2 })
    await inject({ ...done('produce', GHOST, 7), outputs: { value: await inlineRef(40), extra: await inlineRef('x') } })
    // the finisher's request-done arrives before consume's step-done
    await inject({ type: 'request-done', from: GHOST, ts: Date.now(), request, status: 'ok', outputs: { result: await inlineRef(41) } })
    await sched.waitFinished(request)
    const before = await sched.view(request)
    expect(before?.status).toBe('ok')
    expect(before?.steps.map(s => [s.name, s.status, s.peer])).toEqual([['produce', 'ok', GHOST], ['consume', 'running', GHOST]])
    expect(settling).toEqual([`settling ${request}`])
    // a duplicate run's step-done (a claim made after the ghost's) is not the winner's: it changes nothing
    await inject({ ...done('consume', 'other-peer', 1), ts: claimed + 1000 })
    expect((await sched.view(request))?.steps[1].status).toBe('running')
    // the winner's comes last: the view ends where the ghost's does, and the durable record is rewritten
    await inject(done('consume', GHOST, 7))
    const after = await sched.view(request)
    expect(after?.steps.map(s => [s.name, s.status, s.peer])).toEqual([['produce', 'ok', GHOST], ['consume', 'ok', GHOST]])
    expect(after?.outputs).toEqual({ result: 41 })
    expect(settling).toEqual([`settling ${request}`, `settled ${request}`])
    await until(() => sched.reader.record(request)?.steps.every(s => s.status === 'ok') === true, 5_000)
    expect(sched.runsOf(request)).toEqual([])
  })
})
