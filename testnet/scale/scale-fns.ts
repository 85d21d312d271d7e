/** Functions of the scale benchmark (testnet/bench-scale.ts). */
import type { StepContext } from 'dflow'

/** The list 0..n-1. */
export async function range (ctx: StepContext): Promise<{ items: number[] }> {
  const n = await ctx.input<number>('n')
  return { items: Array.from({ length: n }, (_, i) => i) }
}

export async function square (ctx: StepContext): Promise<{ out: number }> {
  const x = await ctx.input<number>('x')
  return { out: x * x }
}

export async function sum (ctx: StepContext): Promise<{ total: number }> {
  const xs = await ctx.input<number[]>('xs')
  return { total: xs.reduce((a, b) => a + b, 0) }
}
