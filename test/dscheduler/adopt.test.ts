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
import type { DflowEvent, StepDone, ValueRef } from '../../protocols/events/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const SELF = 'self-peer'
const GHOST = 'ghost-peer'
const PLACER = 'placer-peer'

async function until (what: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/**
 * A peer accepts an instance's result from one claim and only then hears an earlier claim of its own (a placer's
 * steps-assigned that a loaded host delivered late). Its own claim wins, but its state is final, so it never
 * runs the instance; a peer that heard the assignment first holds the result as a losing claim's and waits for
 * this one: the request hung (a WfCommons cycles run on a 2-core testnet). The winner must vouch for the result.
 */
describe('a result accepted from a claim that then loses to this peer\'s own', () => {
  let stop: (() => Promise<void>) | undefined
  afterEach(async () => { await stop?.() })

  it('is re-announced under the winning claim, with the same values', async () => {
    const logger = defaultLogger()
    const store = new DStoreService({ logger })
    const pool = new WorkerPool({ slots: 2 })
    const bus = new LocalBus()
    const membership: Membership = { live: () => [SELF], isLive: () => true, incarnation: 1, incarnationOf: () => undefined, lastHeard: () => Date.now() }
    const sched = new DScheduler({ self: SELF, bus, store, pool, loader: new BundleLoader(store), membership, logger }, { slots: 2, leaseMs: 0 })
    await store.start()
    await bus.start()
    await sched.start()
    stop = async () => { await sched.stop(); await bus.stop(); await pool.stop(); await store.stop() }
    const inject = async (ev: DflowEvent): Promise<void> => { await bus.publish(ev); await new Promise(resolve => setTimeout(resolve, 20)) }

    const workflow = await (sched.c.loader as BundleLoader).register(await loadWorkflow(fixture('adopt.yaml')))
    const request = await sched.submit({ workflow, inputs: {}, requestId: 'adopt-1' })
    await until(() => sched.runsOf(request).filter(r => r.outcome === 'running').length === 2)
    const mine = sched.runsOf(request).find(r => r.step === 'wait')
    if (mine === undefined) throw new Error('no run of wait')

    // the ghost's claim looks earlier: it wins, runs `wait`, and this peer takes its result
    await inject({ type: 'step-claimed', from: GHOST, request, step: 'wait', index: null, ts: 2, attempt: mine.attempt, incarnation: 7 })
    await until(() => sched.runsOf(request).find(r => r.step === 'wait')?.outcome === 'aborted')
    const bytes = encodeValue('the ghost ran it')
    const x: ValueRef = { cid: (await cidOfBytes(bytes)).toString(), size: bytes.byteLength, holders: [GHOST], inline: bytes }
    await inject({ type: 'step-done', from: GHOST, request, step: 'wait', index: null, ts: Date.now(), attempt: mine.attempt, incarnation: 7, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 1, outputs: { x } })
    expect((await sched.view(request))?.steps.find(s => s.name === 'wait')).toMatchObject({ status: 'ok', peer: GHOST })
    const doneBySelf = (): StepDone[] => sched.eventsOf(request).filter((e): e is StepDone => e.type === 'step-done' && e.from === SELF && e.step === 'wait')
    expect(doneBySelf()).toEqual([])

    // then the placer's assignment of `wait` to this peer arrives, made before the ghost's claim: this peer's
    // claim wins now, and it says so with the result it accepted (once)
    await inject({ type: 'steps-assigned', from: PLACER, ts: 1, request, slots: 2, claims: [{ step: 'wait', index: null, attempt: mine.attempt, peer: SELF, incarnation: 1 }] })
    await until(() => doneBySelf().length > 0)
    const adopted = doneBySelf()
    expect(adopted).toHaveLength(1)
    expect(adopted[0]).toMatchObject({ attempt: mine.attempt, incarnation: 1, outputs: { x: { cid: x.cid } } })
    // nothing ran again
    expect(sched.runsOf(request).filter(r => r.step === 'wait')).toHaveLength(1)
    await inject({ type: 'steps-assigned', from: PLACER, ts: 0, request, slots: 2, claims: [{ step: 'wait', index: null, attempt: mine.attempt, peer: SELF, incarnation: 1 }] })
    expect(doneBySelf()).toHaveLength(1)
    await sched.cancel(request)
    await sched.waitFinished(request)
  })
})
