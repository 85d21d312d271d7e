/**
 * A small lexicon-based sentiment scorer: each known word weighs -3..+3, a negation ("not", "never", "no",
 * "n't") within the two words before flips it, "very"/"really" before it multiplies by 1.5.
 * score = sum of weights / number of words that carried a weight, in -3..3 (0 when none did).
 */
const LEXICON: Record<string, number> = {
  good: 2, great: 3, excellent: 3, happy: 2, love: 3, like: 1, nice: 2, fine: 1, wonderful: 3, best: 3,
  pleasant: 2, glad: 2, fast: 1, easy: 1, clear: 1, success: 2, successful: 2, win: 2, enjoy: 2, beautiful: 3,
  bad: -2, terrible: -3, awful: -3, sad: -2, hate: -3, poor: -2, worst: -3, slow: -1, hard: -1, broken: -2,
  fail: -2, failure: -2, failed: -2, ugly: -2, angry: -2, wrong: -2, bug: -1, crash: -2, problem: -1, pain: -2
}
const NEGATIONS = new Set(['not', 'no', 'never', 'none', 'nothing', 'neither', 'nor', 'without'])
const BOOSTERS = new Set(['very', 'really', 'extremely', 'so'])

export type Sentiment = { score: number, label: 'positive' | 'negative' | 'neutral', matched: number }

export function sentimentOf (text: string): Sentiment {
  const tokens = text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? []
  let sum = 0
  let matched = 0
  tokens.forEach((token, i) => {
    const w = LEXICON[token]
    if (w == null || !Object.prototype.hasOwnProperty.call(LEXICON, token)) return
    const before = tokens.slice(Math.max(0, i - 2), i)
    const negated = before.some(t => NEGATIONS.has(t) || t.endsWith("n't"))
    const boosted = before.some(t => BOOSTERS.has(t))
    sum += w * (negated ? -1 : 1) * (boosted ? 1.5 : 1)
    matched++
  })
  const score = matched === 0 ? 0 : Math.round(sum / matched * 1000) / 1000
  return { score, label: score > 0.1 ? 'positive' : score < -0.1 ? 'negative' : 'neutral', matched }
}
