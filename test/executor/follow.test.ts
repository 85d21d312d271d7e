import { describe, it, expect } from 'vitest'
import type { WorkerPool } from '../../node/executor/pool.ts'
import { ISOLATIONS } from '../../node/executor/channels.ts'
import type { FollowFn, InvokeOptions } from '../../node/executor/types.ts'
import type { Value } from '../../node/values/codec.ts'
import { failure, run, spec, usePools } from './helpers.ts'

// p posts an object, changes it afterwards, and works on for `ms`; c answers what it got; x is anything else
const CODE = `
export default async (ctx) => {
  if (ctx.step.name === 'p') {
    const mode = await ctx.input('mode')
    if (mode === 'throw') throw new Error('p fails')
    const obj = { b: 1, a: 2, nested: { zz: 1, y: 2 }, bytes: new Uint8Array([7]) }
    ctx.output('out', obj)
    obj.a = 99
    await new Promise(r => setTimeout(r, mode === 'slow' ? 300 : 30))
    if (mode === 'stream') ctx.emit('s', 1)
    return
  }
  if (ctx.step.name === 'c') {
    const x = await ctx.input('x')
    console.log('c ran')
    await new Promise(async r => setTimeout(r, await ctx.input('ms')))
    return { keys: Object.keys(x), x }
  }
  return { y: 1 }
}`

/** The follower's invocation: step c, inputs answered by `inputs` (what is not chained). */
function followerOpts (s: ReturnType<typeof spec>, logs: string[], extra: Partial<InvokeOptions> = {}): InvokeOptions {
  return {
    spec: s,
    exportName: 'default',
    request: { id: 'req-1', workflow: 'wf' },
    step: { name: 'c', index: null },
    outputs: ['keys', 'x'],
    timeoutMs: 20_000,
    input: async (name) => { throw new Error(`c asked the host for ${name}`) },
    onOutput: () => {},
    onEmit: () => {},
    onLog: (line) => { logs.push(line) },
    // inputs the host has at once go with the invocation, beside the chained ones
    preloaded: { ms: 10 },
    ...extra
  }
}

describe.each(ISOLATIONS)('executor (%s isolation): a follower queued behind its producer', (isolation) => {
  const make = usePools({ isolation })

  /** Starts p (outputs out and, for mode stream, s) and answers its follow function once it runs. */
  async function producer (pool: WorkerPool, s: ReturnType<typeof spec>, mode: string, extra: Partial<InvokeOptions> = {}) {
    let follow!: FollowFn
    const running = new Promise<void>(resolve => { extra.onRunning = (f) => { follow = f; resolve() } })
    const p = run(pool, s, mode === 'stream' ? ['out', 's'] : ['out'], { step: { name: 'p', index: null }, inputs: { mode }, ...extra })
    await running
    return { p, follow }
  }

  it('runs in the producer\'s instance right after it returns, with the value as posted, in DAG-CBOR key order', async () => {
    const pool = make()
    const s = spec(CODE + ' // follow-ok')
    const { p, follow } = await producer(pool, s, 'ok')
    const logs: string[] = []
    const outputs: Record<string, Value> = {}
    const h = follow(followerOpts(s, logs, { onOutput: (n, v) => { outputs[n] = v } }), { x: 'out' })
    expect(h).toBeDefined()
    const pr = await p.result
    const cr = await h!.result
    expect(cr.coldStartMs).toBe(0)
    expect(cr.startedAt).toBeGreaterThanOrEqual(pr.endedAt)
    expect(logs).toEqual(['c ran'])
    // as the store would give it: shorter keys first, then by bytes; the change after the post is not seen
    expect(outputs.keys).toEqual(['a', 'b', 'bytes', 'nested'])
    expect(outputs.x).toEqual({ a: 2, b: 1, bytes: new Uint8Array([7]), nested: { y: 2, zz: 1 } })
    expect(Object.keys((outputs.x as Record<string, Value>).nested as object)).toEqual(['y', 'zz'])
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, busy: 0, chainedStarts: 1, coldStarts: 1, warmStarts: 1 })
  })

  it('a producer that fails gives its follower back (ChainDroppedError) and the follower never ran', async () => {
    const pool = make()
    const s = spec(CODE + ' // follow-throw')
    const { p, follow } = await producer(pool, s, 'throw')
    const logs: string[] = []
    const h = follow(followerOpts(s, logs), { x: 'out' })
    // p throws only once the host answered its input, so the link is made first
    expect(h).toBeDefined()
    expect((await failure(p.result)).name).toBe('FunctionError')
    expect((await failure(h!.result)).name).toBe('ChainDroppedError')
    expect(logs).toEqual([])
    expect(pool.stats()).toMatchObject({ chainedStarts: 0, busy: 0, queued: 0 })
    // the instance and the slot are free again
    expect((await run(pool, s, ['y'], { step: { name: 'x', index: null } }).result).coldStartMs).toBe(0)
  })

  it('an output that is a stream cannot be chained: the follower is given back after the producer\'s done', async () => {
    const pool = make()
    const s = spec(CODE + ' // follow-stream')
    const { p, follow } = await producer(pool, s, 'stream')
    const logs: string[] = []
    const h = follow(followerOpts(s, logs), { x: 's' })
    await p.result
    expect((await failure(h!.result)).name).toBe('ChainDroppedError')
    expect(logs).toEqual([])
  })

  it('cancel takes the link back while the producer runs; an aborted producer drops its follower', async () => {
    const pool = make()
    const s = spec(CODE + ' // follow-cancel')
    const first = await producer(pool, s, 'slow')
    const h = first.follow(followerOpts(s, []), { x: 'out' })
    h!.cancel()
    expect((await failure(h!.result)).name).toBe('ChainDroppedError')
    await first.p.result
    // a second link to the same (finished) invocation is refused
    expect(first.follow(followerOpts(s, []), { x: 'out' })).toBeUndefined()

    const ac = new AbortController()
    const second = await producer(pool, s, 'slow', { signal: ac.signal })
    const logs: string[] = []
    const h2 = second.follow(followerOpts(s, logs), { x: 'out' })
    ac.abort()
    expect((await failure(second.p.result)).name).toBe('StepCancelledError')
    expect((await failure(h2!.result)).name).toBe('ChainDroppedError')
    expect(logs).toEqual([])
    expect(pool.stats()).toMatchObject({ chainedStarts: 0, busy: 0, queued: 0 })
  })

  it('a chain holds one slot: with one slot, an invocation asked for once the follower runs waits for its end', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // follow-slot')
    const { p, follow } = await producer(pool, s, 'ok')
    let started!: () => void
    const running = new Promise<void>(resolve => { started = resolve })
    // the follower runs long enough for a second instance to start, had the slot been free
    const h = follow(followerOpts(s, [], { preloaded: { ms: 250 }, onRunning: () => { started() } }), { x: 'out' })
    await running
    const other = run(pool, s, ['y'], { step: { name: 'x', index: null } })
    const [, cr, or] = await Promise.all([p.result, h!.result, other.result])
    expect(pool.stats().chainedStarts).toBe(1)
    expect(or.startedAt).toBeGreaterThanOrEqual(cr.endedAt)
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0 })
  })

  it('a follower does not overtake invocations waiting for a slot: it is given back when one queues', async () => {
    const pool = make({ slots: 1 })
    const s = spec(CODE + ' // follow-fifo')
    const { p, follow } = await producer(pool, s, 'slow')
    const logs: string[] = []
    const h = follow(followerOpts(s, logs), { x: 'out' })
    expect(h).toBeDefined()
    const other = run(pool, s, ['y'], { step: { name: 'x', index: null } })
    expect((await failure(h!.result)).name).toBe('ChainDroppedError')
    // and while one waits, no new link is made
    expect(follow(followerOpts(s, []), { x: 'out' })).toBeUndefined()
    const [pr, or] = await Promise.all([p.result, other.result])
    expect(or.startedAt).toBeGreaterThanOrEqual(pr.endedAt)
    expect(logs).toEqual([])
    expect(pool.stats()).toMatchObject({ chainedStarts: 0, busy: 0, queued: 0 })
  })
})
