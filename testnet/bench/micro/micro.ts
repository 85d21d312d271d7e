/** Functions of the micro benchmarks (testnet/bench-micro.ts). */
import type { StepContext } from 'dflow'

/** Posts `value` at once, logs the wall-clock post time, then holds its slot for 300 ms more. */
export async function produce (ctx: StepContext): Promise<void> {
  const seed = await ctx.input<number>('seed')
  ctx.output('value', seed)
  ctx.log(`posted ${Date.now()}`)
  await new Promise(resolve => setTimeout(resolve, 300))
}

/** Logs the wall-clock time it started running. */
export async function consume (ctx: StepContext): Promise<{ done: number }> {
  ctx.log(`running ${Date.now()}`)
  return { done: await ctx.input<number>('value') }
}

export async function inc (ctx: StepContext): Promise<{ out: number }> {
  return { out: (await ctx.input<number>('x')) + 1 }
}
