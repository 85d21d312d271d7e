/**
 * The fuzz harness: every codec that reads bytes or JSON from outside (the network, the HTTP API) is held to one
 * property - for ANY input it answers a value or throws one of its own named errors, never anything else (a
 * TypeError, a RangeError from a stack overflow, an unhandled rejection), and never hangs.
 *
 * How to fuzz a new codec (e.g. request-sync), in test/fuzz/<protocol>.fuzz.test.ts:
 *   1. an arbitrary of raw inputs (`bytesLike(validSamples)`: random bytes, valid encodings with bytes flipped,
 *      and arbitrary dag-cbor maps), and one of near-valid structures (`mutated(validArb)`: one field replaced,
 *      dropped or added) - the second finds far more than the first;
 *   2. `checkCodec('sync message', arb, input => decode(input), ['SyncMessageError'])` (or `checkCodecAsync`);
 *   3. where the codec has an encoder, a round trip: `decode(encode(v))` equals `v` for valid `v`.
 * `npm test` runs FUZZ_RUNS (default 100) cases per property; `npm run fuzz` runs 100 000.
 */
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'

export const RUNS = Number(process.env.FUZZ_RUNS ?? 100)
/** a single case slower than this is a hang-in-waiting (super-linear work on hostile input) */
export const CASE_BUDGET_MS = Number(process.env.FUZZ_CASE_MS ?? 2000)
/** vitest timeout of one fuzz test: 100 000 cases of the slowest codec fit in it */
export const TEST_TIMEOUT_MS = Math.max(60_000, RUNS * 100)

export const params = { numRuns: RUNS, endOnFailure: true } as const

/** Runs one case: a value or a named error passes; anything else (or a slow case) fails the property. */
export function outcome (fn: () => unknown, names: readonly string[]): unknown {
  const t0 = performance.now()
  try {
    return fn()
  } catch (err) {
    if (!(err instanceof Error) || !names.includes(err.name)) {
      throw new Error(`untyped failure (expected ${names.join(' | ')}): ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`)
    }
    return err
  } finally {
    const ms = performance.now() - t0
    if (ms > CASE_BUDGET_MS) throw new Error(`one case took ${ms.toFixed(0)} ms (budget ${CASE_BUDGET_MS} ms)`)
  }
}

export async function outcomeAsync (fn: () => Promise<unknown>, names: readonly string[]): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hang = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`one case did not settle within ${CASE_BUDGET_MS} ms`)) }, CASE_BUDGET_MS)
  })
  try {
    return await Promise.race([fn(), hang])
  } catch (err) {
    if (err instanceof Error && names.includes(err.name)) return err
    throw new Error(`untyped failure (expected ${names.join(' | ')}): ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`)
  } finally {
    clearTimeout(timer)
  }
}

export function checkCodec<T> (arb: fc.Arbitrary<T>, decode: (input: T) => unknown, names: readonly string[]): void {
  fc.assert(fc.property(arb, input => { outcome(() => decode(input), names) }), params)
}

export async function checkCodecAsync<T> (arb: fc.Arbitrary<T>, decode: (input: T) => Promise<unknown>, names: readonly string[]): Promise<void> {
  await fc.assert(fc.asyncProperty(arb, async input => { await outcomeAsync(async () => await decode(input), names) }), params)
}

const SAMPLE_CID = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')

/** Leaves of what a hostile peer can put in a dag-cbor map: every CBOR kind dag-cbor decodes. */
export const cborLeaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -1, 2 ** 53, -(2 ** 53), 1e15, Number.MAX_SAFE_INTEGER + 2, 0.5),
  fc.string({ maxLength: 40 }), fc.constantFrom('', 'ok', 'dataflow', '../x', '__proto__', 'constructor', 'x'.repeat(5000)),
  fc.uint8Array({ maxLength: 64 }), fc.constant(SAMPLE_CID)
)

/** Arbitrary dag-cbor values (maps, lists, leaves), nested a few levels. */
export const cborValue: fc.Arbitrary<unknown> = fc.letrec(tie => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    cborLeaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 6 }))
})).value

/** Encodes with dag-cbor; values dag-cbor cannot encode (e.g. -0 edge cases) become an empty map. */
export function encodeCbor (v: unknown): Uint8Array {
  try {
    return dagCbor.encode(v)
  } catch {
    return dagCbor.encode({})
  }
}

/** A valid structure with one field replaced by anything, dropped, or a field added - or left as it is. */
export function mutated<T extends Record<string, unknown>> (valid: fc.Arbitrary<T>): fc.Arbitrary<Record<string, unknown>> {
  return valid.chain(v => {
    const keys = Object.keys(v)
    if (keys.length === 0) return fc.constant(v as Record<string, unknown>)
    return fc.oneof(
      fc.constant(v as Record<string, unknown>),
      fc.tuple(fc.constantFrom(...keys), cborValue).map(([k, x]) => ({ ...v, [k]: x })),
      fc.constantFrom(...keys).map(k => { const c: Record<string, unknown> = { ...v }; delete c[k]; return c }),
      fc.tuple(fc.string({ maxLength: 10 }), cborValue).map(([k, x]) => ({ ...v, [k]: x }))
    )
  })
}

/** Raw bytes: random, the encodings of `samples` with bytes flipped or cut, and encoded arbitrary values. */
export function bytesLike (samples: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const flipped = fc.tuple(samples, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([bytes, flips]) => {
      const out = Uint8Array.from(bytes)
      for (const [at, b] of flips) if (out.length > 0) out[at % out.length] = b
      return out
    })
  const cut = fc.tuple(samples, fc.nat()).map(([bytes, n]) => bytes.subarray(0, bytes.length === 0 ? 0 : n % bytes.length))
  return fc.oneof(fc.uint8Array({ maxLength: 256 }), samples, flipped, cut, cborValue.map(encodeCbor))
}

/** JSON text a client could send: valid JSON of any shape, deep nesting, and broken text. */
export const jsonText: fc.Arbitrary<string> = fc.oneof(
  fc.json(),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1, max: 20_000 }).map(n => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 1, max: 20_000 }).map(n => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.constantFrom('{"__proto__":{"x":1}}', '{"$bytes":"!!"}', '{"$bytes":123}', '1e400', '"\\ud800"', '')
)
