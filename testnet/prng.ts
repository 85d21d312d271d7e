/**
 * A small seeded PRNG (mulberry32): the same seed gives the same kill plan and workload on every machine,
 * which Math.random cannot.
 */
export type Rng = () => number

export function mulberry32 (seed: number): Rng {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A seed from a number or any string (FNV-1a of the string), so `--seed nightly` works too. */
export function seedOf (seed: string | number): number {
  if (typeof seed === 'number') return seed >>> 0
  if (/^\d+$/.test(seed)) return Number(seed) >>> 0
  let h = 0x811c9dc5
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

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
