import type { StepContext } from 'dflow'
import type { Value } from '../../node/values/codec.ts'

export interface Posted { name: string, value: Value, at: number, index?: number }

/** A StepContext for calling step functions directly: inputs from a map, outputs and emits recorded with times. */
export function fakeContext (inputs: Record<string, unknown>, opts: { step?: string, index?: number | null, signal?: AbortSignal } = {}) {
  const outputs: Record<string, Value> = {}
  const streams: Record<string, Value[]> = {}
  const posted: Posted[] = []
  const t0 = Date.now()
  const ctx: StepContext = {
    async input<T> (name: string): Promise<T> {
      if (!(name in inputs)) throw new Error(`no input ${name}`)
      return inputs[name] as T
    },
    output (name: string, value: Value): void {
      if (name in outputs || name in streams) throw new Error(`output ${name} posted twice`)
      outputs[name] = value
      posted.push({ name, value, at: Date.now() - t0 })
    },
    emit (name: string, value: Value): void {
      if (name in outputs) throw new Error(`output ${name} is a value, not a stream`)
      const list = streams[name] ?? (streams[name] = [])
      list.push(value)
      posted.push({ name, value, at: Date.now() - t0, index: list.length - 1 })
    },
    request: { id: 'req-1', workflow: 'test' },
    step: { name: opts.step ?? 'step', index: opts.index ?? null },
    signal: opts.signal ?? new AbortController().signal,
    log: () => {}
  }
  /** the function's return value merged in, as the executor does */
  const run = async (fn: (ctx: StepContext) => unknown): Promise<Record<string, Value>> => {
    const ret = await fn(ctx)
    const all: Record<string, Value> = { ...outputs, ...streams }
    if (ret != null && typeof ret === 'object') Object.assign(all, ret)
    return all
  }
  return { ctx, outputs, streams, posted, run, t0 }
}
