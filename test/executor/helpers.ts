import { createHash } from 'node:crypto'
import type { Value } from '../../node/values/codec.ts'
import type { InstanceSpec, InvokeOptions, InvokeResult } from '../../node/executor/types.ts'
import { afterEach, expect } from 'vitest'
import { WorkerPool, type WorkerPoolOptions } from '../../node/executor/pool.ts'

export function spec (code: string, memoryMb = 64): InstanceSpec {
  return { code: { cid: 'test-' + createHash('sha256').update(code).digest('hex').slice(0, 32), code }, memoryMb }
}

export interface Recorded {
  events: Array<{ at: number, kind: 'output' | 'emit' | 'log', name?: string, index?: number, value?: Value, line?: string }>
  outputs: Record<string, Value>
  emits: Record<string, Value[]>
  logs: string[]
}

/** Invokes with recording callbacks; `inputs` answers ctx.input. */
export function run (pool: WorkerPool, code: string | InstanceSpec, outputs: string[], extra: Partial<InvokeOptions> & { inputs?: Record<string, Value> } = {}): { rec: Recorded, result: Promise<InvokeResult> } {
  const rec: Recorded = { events: [], outputs: {}, emits: {}, logs: [] }
  const inputs = extra.inputs ?? {}
  const result = pool.invoke({
    spec: typeof code === 'string' ? spec(code) : code,
    exportName: 'default',
    request: { id: 'req-1', workflow: 'wf' },
    step: { name: 'stepA', index: null },
    outputs,
    timeoutMs: 20_000,
    input: async (name) => {
      if (!(name in inputs)) throw new Error(`unknown parameter ${name}`)
      return inputs[name]
    },
    onOutput: (name, value) => { rec.outputs[name] = value; rec.events.push({ at: Date.now(), kind: 'output', name, value }) },
    onEmit: (name, index, value) => {
      (rec.emits[name] ??= [])[index] = value
      rec.events.push({ at: Date.now(), kind: 'emit', name, index, value })
    },
    onLog: (line) => { rec.logs.push(line); rec.events.push({ at: Date.now(), kind: 'log', line }) },
    ...extra
  })
  return { rec, result }
}

/** Awaits a rejection and returns the error (fails the test if it resolves). */
export async function failure (p: Promise<unknown>): Promise<Error & Record<string, any>> {
  try {
    await p
  } catch (err) {
    return err as Error & Record<string, any>
  }
  throw new Error('expected the invocation to fail, but it succeeded')
}

/**
 * Inside a describe: `make(opts)` builds a pool with `defaults` under `opts`; after each test every pool made is
 * stopped and must have left no instance behind.
 */
export function usePools (defaults: WorkerPoolOptions): (opts?: WorkerPoolOptions) => WorkerPool {
  const pools: WorkerPool[] = []
  afterEach(async () => {
    for (const p of pools.splice(0)) {
      await p.stop()
      expect(p.stats().instances).toBe(0)
    }
  })
  return (opts = {}) => {
    const p = new WorkerPool({ ...defaults, ...opts })
    pools.push(p)
    return p
  }
}

/** Polls `cond` (the pool's state has no event for it); fails after 15 s. */
export async function until (cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in 15 s')
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
