import type { StepContext } from 'dflow'

/** Banned words and their weight; a text whose total weight reaches FLAG_AT is flagged. */
export const BANNED: Record<string, number> = {
  weapon: 2, weapons: 2, gun: 2, guns: 2, bomb: 3, drugs: 2, cocaine: 3, heroin: 3, stolen: 1, counterfeit: 2,
  fraud: 1, hack: 1, kill: 3, poison: 2, explosive: 3
}
export const FLAG_AT = 2

export type Report = { label: string, score: number, text: string, length: number }

export function tokens (text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
}

export async function extract (ctx: StepContext): Promise<{ text: string, words: string[] }> {
  const content = await ctx.input<string | Uint8Array>('content')
  // bytes must be UTF-8 text: a document the recognizer cannot read fails loudly instead of passing as clean
  const text = typeof content === 'string' ? content : new TextDecoder('utf-8', { fatal: true }).decode(content)
  return { text, words: tokens(text) }
}

export async function classify (ctx: StepContext): Promise<{ label: string, score: number, reasons: string[] }> {
  const words = await ctx.input<string[]>('words')
  let score = 0
  const reasons = new Set<string>()
  for (const w of words) {
    if (!Object.prototype.hasOwnProperty.call(BANNED, w)) continue
    score += BANNED[w]
    reasons.add(w)
  }
  return { label: score >= FLAG_AT ? 'flagged' : 'clean', score, reasons: [...reasons].sort() }
}

export async function censor (ctx: StepContext): Promise<{ text: string, count: number }> {
  const [text, reasons] = await Promise.all([ctx.input<string>('text'), ctx.input<string[]>('reasons')])
  const banned = new Set(reasons)
  let count = 0
  const censored = text.replace(/[\p{L}\p{N}]+/gu, w => {
    if (!banned.has(w.toLowerCase())) return w
    count++
    return '*'.repeat(w.length)
  })
  return { text: censored, count }
}

export async function pass (ctx: StepContext): Promise<{ text: string }> {
  return { text: await ctx.input<string>('text') }
}

export async function finalize (ctx: StepContext): Promise<{ report: Report }> {
  const [text, label, score] = await Promise.all([ctx.input<string>('text'), ctx.input<string>('label'), ctx.input<number>('score')])
  return { report: { label, score, text, length: text.length } }
}
