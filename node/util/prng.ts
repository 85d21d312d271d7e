/**
 * A small seeded PRNG (mulberry32): the same seed gives the same kill plan, workload or dropped events on every
 * machine, which Math.random cannot.
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

