import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { EmbeddedPeer } from '../../node/engine/embedded.ts'
import type { RequestView } from '../../node/dscheduler/types.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const step = (v: RequestView, name: string, index: number | null = null) => {
  const s = v.steps.find(x => x.name === name && x.index === index)
  if (s === undefined) throw new Error(`no step ${name}[${index}] in ${JSON.stringify(v.steps)}`)
  return s
}

describe('DScheduler on one embedded peer', () => {
  let peer: EmbeddedPeer
  beforeAll(async () => { peer = await EmbeddedPeer.create({ slots: 4 }) })
  afterAll(async () => { await peer.stop() })

  it('dataflow: a consumer starts while its producer is still running', async () => {
    const v = await peer.run(fixture('dataflow.yaml'), { n: 20 }, { mode: 'dataflow' })
    expect(v.status).toBe('ok')
    expect(v.outputs).toEqual({ result: 41 })
    const producer = step(v, 'produce')
    const consumer = step(v, 'consume')
    expect(consumer.startMs).not.toBeNull()
    // the producer posts, then works 400 ms more: the consumer ran inside that window
    expect(consumer.startMs as number).toBeLessThan(producer.endMs as number)
    expect(consumer.endMs as number).toBeLessThan(producer.endMs as number)
  })

  it('control: the same consumer starts only after its producer returned', async () => {
    const v = await peer.run(fixture('dataflow.yaml'), { n: 20 }, { mode: 'control' })
    expect(v.status).toBe('ok')
    expect(v.outputs).toEqual({ result: 41 })
    expect(step(v, 'consume').startMs as number).toBeGreaterThanOrEqual(step(v, 'produce').endMs as number)
  })

  it('dataflow: a consumer on the producer\'s peer starts in its instance (follow.ts), with the values the store gives', async () => {
    // a consumer is claimed one level ahead only once an earlier request taught the workflow's output sizes
    await peer.run(fixture('chain.yaml'), { n: 0 }, { mode: 'dataflow' })
    const before = peer.pool.stats().chainedStarts
    const v = await peer.run(fixture('chain.yaml'), { n: 1 }, { mode: 'dataflow' })
    expect(v.status, v.error).toBe('ok')
    // key order as DAG-CBOR has it, as in control mode below, where the value comes from the store
    expect(v.outputs).toEqual({ result: 4, keys: [['a', 'b', 'nested'], ['y', 'zz']] })
    // b after a, c after b, k after o: each producer works 300 ms, its consumer is queued long before it returns
    expect(peer.pool.stats().chainedStarts - before).toBe(3)
    for (const [p, c] of [['a', 'b'], ['b', 'c'], ['o', 'k']]) expect(step(v, c).startMs as number).toBeGreaterThanOrEqual(step(v, p).endMs as number)

    const mid = peer.pool.stats().chainedStarts
    const ctl = await peer.run(fixture('chain.yaml'), { n: 1 }, { mode: 'control' })
    expect(ctl.outputs).toEqual(v.outputs)
    expect(peer.pool.stats().chainedStarts).toBe(mid)
  })

  it('dataflow: an output a consumer claimed here waits for is announced at once, not folded into the step-done', async () => {
    // the consumer is claimed one level ahead (so it waits here while its producer runs) once sizes are learned
    await peer.run(fixture('early.yaml'), { n: 1 }, { mode: 'dataflow' })
    const events: Array<{ type: string, step?: string, output?: string, outputs?: Record<string, unknown> }> = []
    const listen = (e: Event): void => { events.push((e as CustomEvent).detail) }
    peer.scheduler.addEventListener('scheduler:event', listen)
    try {
      const v = await peer.run(fixture('early.yaml'), { n: 2 }, { mode: 'dataflow' })
      expect(v.status, v.error).toBe('ok')
      expect(v.outputs).toEqual({ r: 5 })
    } finally {
      peer.scheduler.removeEventListener('scheduler:event', listen)
    }
    const ready = events.findIndex(e => e.type === 'output-ready' && e.step === 'p' && e.output === 'v')
    const done = events.findIndex(e => e.type === 'step-done' && e.step === 'p')
    expect(ready).toBeGreaterThanOrEqual(0)
    expect(ready).toBeLessThan(done)
    expect(events[done].outputs?.v).toBeUndefined()
  })

  it('a value held here goes out with the invocation: the consumer\'s ctx.input does not ask the peer for it', async () => {
    const n = 64 * 1024 // beyond the 16 KiB an event carries inline: the value is read from the store
    let expected = 0
    for (let i = 0; i < n; i++) expected = (expected + ((i * 7 + n) & 255)) % 65521
    const asked: string[] = []
    const preloaded: string[] = []
    const invoke = peer.pool.invoke.bind(peer.pool)
    peer.pool.invoke = async opts => {
      if (opts.step.name !== 'c') return await invoke(opts)
      const preload = opts.preload
      return await invoke({
        ...opts,
        preload: async () => { const more = await preload?.(); preloaded.push(...Object.keys(more ?? {})); return more },
        input: async name => { asked.push(name); return await opts.input(name) }
      })
    }
    try {
      for (const mode of ['control', 'dataflow'] as const) {
        const v = await peer.run(fixture('preload.yaml'), { n }, { mode })
        expect(v.status, v.error).toBe('ok')
        expect(v.outputs).toEqual({ r: { length: n, sum: expected } })
      }
    } finally {
      peer.pool.invoke = invoke
    }
    // control fires c after p returned; dataflow once p's output is ready (c is not claimed ahead: no sizes
    // learned for this workflow before the first request, and no follower without them)
    expect(preloaded).toEqual(['v', 'v'])
    expect(asked).toEqual([])
  })

  it('foreach over a stream and over another foreach pipelines element by element', async () => {
    const v = await peer.run(fixture('pipeline.yaml'), { n: 5 }, { mode: 'dataflow' })
    expect(v.status).toBe('ok')
    expect(v.outputs).toEqual({ total: (0 + 10 + 20 + 30 + 40) * 4, ys: [0, 20, 40, 60, 80] })
    // element 0's second stage was ready (its input existed) while the stream still emitted: 4 more elements
    // at 60 ms each were to come, so the margin is ~240 ms of a hand-off that takes a few
    expect(step(v, 'again', 0).readyMs as number).toBeLessThan(step(v, 'stream').endMs as number)
    for (let i = 0; i < 5; i++) expect(step(v, 'again', i).status).toBe('ok')
  })

  it('foreach over an input list, over a list value, and over an empty list', async () => {
    for (const mode of ['dataflow', 'control'] as const) {
      const v = await peer.run(fixture('foreach-list.yaml'), { xs: [1, 2, 3] }, { mode })
      expect(v.status, v.error).toBe('ok')
      expect(v.outputs).toEqual({ fromInput: [2, 4, 6], fromValue: [4, 8, 12], empty: [] })
    }
  })

  it('when + oneOf: the false branch is skipped, its output is null, the join takes the branch that ran', async () => {
    const big = await peer.run(fixture('branches.yaml'), { n: 9 })
    expect(big.status).toBe('ok')
    expect(big.outputs).toEqual({ final: 'joined big:9', bigOnly: 'big:9' })
    expect(step(big, 'small').status).toBe('skipped')
    const small = await peer.run(fixture('branches.yaml'), { n: 2 }, { mode: 'control' })
    expect(small.outputs).toEqual({ final: 'joined small:2', bigOnly: null })
    expect(step(small, 'big').status).toBe('skipped')
  })

  it('eager: invoked at request start, its ctx.input waits for the data', async () => {
    const v = await peer.run(fixture('eager.yaml'), { n: 1 })
    expect(v.status).toBe('ok')
    expect(v.outputs).toEqual({ waited: 'late' })
    expect(step(v, 'reader').startMs as number).toBeLessThan(step(v, 'produce').endMs as number)
  })

  it('an eager step waiting for its input gives its slot back: on one slot its producer still runs', async () => {
    const one = await EmbeddedPeer.create({ slots: 1 })
    try {
      const v = await one.run(fixture('eager-first.yaml'), { n: 1 })
      expect(v.status, v.error).toBe('ok')
      expect(v.outputs).toEqual({ waited: 'late' })
      // the reader was invoked first and waited; the producer ran in the slot it gave back
      expect(step(v, 'reader').startMs as number).toBeLessThan(step(v, 'produce').endMs as number)
    } finally {
      await one.stop()
    }
  })

  it('a throwing function fails the request with an error naming the step and the message', async () => {
    const v = await peer.run(fixture('failing.yaml'), {})
    expect(v.status).toBe('failed')
    expect(v.error).toMatch(/step boom failed: kaboom on purpose/)
    expect(step(v, 'boom').status).toBe('failed')
  })

  it('retries re-run a failed step', async () => {
    const v = await peer.run(fixture('retry.yaml'), {})
    expect(v.status).toBe('ok')
    expect(v.outputs).toEqual({ ok: 2 })
  })

  it('a hanging function is stopped at its timeout and fails the request', async () => {
    const v = await peer.run(fixture('hang.yaml'), {})
    expect(v.status).toBe('failed')
    expect(v.error).toMatch(/step hang failed: .*(timeout|timed out)/i)
  })

  it('a missing declared output fails the step', async () => {
    const v = await peer.run(fixture('missing-output.yaml'), {})
    expect(v.status).toBe('failed')
    expect(v.error).toMatch(/forgetful.*x/)
  })

  it('a request id is idempotent', async () => {
    const a = await peer.run(fixture('dataflow.yaml'), { n: 1 }, { requestId: 'same-id-1' })
    const b = await peer.run(fixture('dataflow.yaml'), { n: 1 }, { requestId: 'same-id-1' })
    expect(b.requestId).toBe(a.requestId)
    expect(b.outputs).toEqual(a.outputs)
  })

  it('cancel: running instances see ctx.signal abort and the request fails as cancelled', async () => {
    const { loadWorkflow } = await import('../../node/workflow/index.ts')
    const workflow = await peer.loader.register(await loadWorkflow(fixture('cancel.yaml')))
    const id = await peer.scheduler.submit({ workflow, inputs: {} })
    const waitLog = async (text: string): Promise<void> => {
      const deadline = Date.now() + 10_000
      while (!peer.scheduler.logsOf(id).some(l => l.line.includes(text))) {
        if (Date.now() > deadline) throw new Error(`no log ${text}: ${JSON.stringify(peer.scheduler.logsOf(id))}`)
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }
    await waitLog('waiting')
    expect(await peer.scheduler.cancel(id, 'test')).toBe(true)
    await peer.scheduler.waitFinished(id)
    const v = await peer.scheduler.view(id)
    expect(v?.status).toBe('failed')
    expect(v?.error).toMatch(/cancelled: test/)
    await waitLog('saw abort')
  })

  it('missing and unknown inputs are refused before anything runs', async () => {
    await expect(peer.run(fixture('dataflow.yaml'), {})).rejects.toMatchObject({ name: 'SubmitError', message: expect.stringMatching(/needs input n/) })
    await expect(peer.run(fixture('dataflow.yaml'), { n: 1, m: 2 })).rejects.toMatchObject({ name: 'SubmitError', message: expect.stringMatching(/no input m/) })
  })
})
