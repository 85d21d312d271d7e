import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { int, pick, type Rng } from '../prng.ts'
import type { Value } from '../../node/values/codec.ts'

export const EXAMPLE_NAMES = exampleWorkflows.map(w => w.name) as string[]

export class UnknownChaosWorkflowError extends Error {
  static readonly NAME = 'UnknownChaosWorkflowError'
  constructor (name: string) {
    super(`unknown workflow "${name}" for chaos; known: ${EXAMPLE_NAMES.join(', ')} (or "mixed")`)
    this.name = UnknownChaosWorkflowError.NAME
  }
}

/** `mixed` (or nothing) = every example workflow; otherwise a comma-separated list of example names. */
export function parseWorkflowList (list: string | undefined): string[] {
  if (list == null || list.trim() === '' || list.trim() === 'mixed') return [...EXAMPLE_NAMES]
  const names = list.split(',').map(s => s.trim()).filter(s => s !== '')
  for (const n of names) if (!EXAMPLE_NAMES.includes(n)) throw new UnknownChaosWorkflowError(n)
  return [...new Set(names)]
}

export function workflowPath (name: string): string {
  const w = exampleWorkflows.find(w => w.name === name)
  if (w == null) throw new UnknownChaosWorkflowError(name)
  return w.path
}

const WORDS = ['the', 'cat', 'dog', 'hat', 'and', 'a', 'day', 'run', 'blue', 'sky', 'peer', 'data', 'flow', 'step', 'node']
const GOOD = ['great', 'good', 'happy', 'excellent', 'nice', 'love']
const BAD = ['bad', 'awful', 'sad', 'terrible', 'hate', 'poor']
const BANNED = ['weapons', 'gun', 'stolen', 'counterfeit']

function words (rng: Rng, n: number, extra: string[] = []): string[] {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(extra.length > 0 && rng() < 0.25 ? pick(rng, extra) : pick(rng, WORDS))
  return out
}

function matrix (rng: Rng, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => int(rng, -9, 9)))
}

/**
 * Small, different inputs for each request: distinct results make a mixed-up output (one request's value
 * served for another's) visible, and small values keep the CI scenario fast.
 */
export function inputsFor (name: string, rng: Rng): Record<string, Value> {
  switch (name) {
    case 'wordcount': {
      const lines = Array.from({ length: int(rng, 1, 3) }, () => words(rng, int(rng, 2, 8)).join(' '))
      return { text: lines.join('\n') }
    }
    case 'fileprocessing': {
      const title = words(rng, int(rng, 1, 3)).join(' ')
      const body = words(rng, int(rng, 4, 12), [...GOOD, ...BAD])
      if (rng() < 0.3) body[0] = `*${body[0]}*`
      return { document: `# ${title}\n\n${body.join(' ')}.` }
    }
    case 'recognizer':
      return { text: words(rng, int(rng, 3, 8), BANNED).join(' ') }
    case 'matrix': {
      const m = int(rng, 1, 4)
      const k = int(rng, 1, 3)
      const n = int(rng, 1, 3)
      return { a: matrix(rng, m, k), b: matrix(rng, k, n) }
    }
    default:
      throw new UnknownChaosWorkflowError(name)
  }
}
