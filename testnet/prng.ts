/** Helpers over the seeded PRNG of node/util/prng.ts (kill plans, workloads). */
import { mulberry32, seedOf, type Rng } from '../node/util/prng.ts'

export { mulberry32, seedOf, type Rng }

/** Integer in [lo, hi] (inclusive). */
export function int (rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1))
}

export function pick<T> (rng: Rng, list: readonly T[]): T {
  if (list.length === 0) throw new RangeError('pick from an empty list')
  return list[Math.floor(rng() * list.length)]
}

/** Fisher-Yates on a copy. */
export function shuffle<T> (rng: Rng, list: readonly T[]): T[] {
  const out = [...list]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** Independent streams per purpose: changing the workload size must not change which peers die. */
export function fork (seed: number, purpose: string): Rng {
  return mulberry32(seedOf(`${seed}:${purpose}`))
}
