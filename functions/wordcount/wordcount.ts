import type { StepContext } from 'dflow'

/** Lines per chunk: small enough that a long text gives several chunks, and so several parallel counts. */
export const CHUNK_LINES = 40

export type WordCount = { word: string, count: number }

/** Words: runs of letters/digits, with inner apostrophes (don't), lower-cased. */
export function words (text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu) ?? []
}

export async function split (ctx: StepContext): Promise<void> {
  const text = await ctx.input<string>('text')
  if (typeof text !== 'string') throw new TypeError(`split: input text must be a string, got ${typeof text}`)
  const lines = text.split(/\r?\n/)
  let emitted = 0
  for (let i = 0; i < lines.length; i += CHUNK_LINES) {
    const chunk = lines.slice(i, i + CHUNK_LINES).join('\n')
    if (chunk.trim() === '') continue
    // each element is posted now: its count instance starts while we cut the next one
    ctx.emit('chunks', chunk)
    emitted++
  }
  if (emitted === 0) ctx.output('chunks', [])
}

export async function count (ctx: StepContext): Promise<{ counts: Record<string, number> }> {
  const chunk = await ctx.input<string>('chunk')
  const tally = new Map<string, number>()
  for (const w of words(chunk)) tally.set(w, (tally.get(w) ?? 0) + 1)
  // fromEntries defines own properties, so a word like "__proto__" is counted, not a prototype
  return { counts: Object.fromEntries(tally) }
}

export async function merge (ctx: StepContext): Promise<{ total: number, distinct: number, top: WordCount[] }> {
  const parts = await ctx.input<Array<Record<string, number>>>('counts')
  const all = new Map<string, number>()
  let total = 0
  for (const part of parts) {
    for (const [word, n] of Object.entries(part)) {
      all.set(word, (all.get(word) ?? 0) + n)
      total += n
    }
  }
  const top = [...all].map(([word, n]) => ({ word, count: n }))
    .sort((a, b) => b.count - a.count || (a.word < b.word ? -1 : a.word > b.word ? 1 : 0))
    .slice(0, 10)
  return { total, distinct: all.size, top }
}
