/**
 * A private network's cipher (xsalsa20, WASM) after one large write: without fresh views every other cipher
 * instance re-grows the shared WebAssembly memory on its next update until it hits its 62.5 MiB maximum and
 * throws, which killed peers moving values over 640 KiB (node/network/xsalsa20-memory.ts).
 */
import { describe, expect, it } from 'vitest'
// @ts-expect-error no types (see xsalsa20-memory.ts)
import xsalsa20 from 'xsalsa20'
import { freshXsalsa20Views } from '../../node/network/xsalsa20-memory.ts'

type Cipher = { update: (input: Uint8Array) => Uint8Array, finalize: () => void }
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0
const make = xsalsa20 as (nonce: Uint8Array, key: Uint8Array) => Cipher

describe('xsalsa20 memory views (pnet)', () => {
  it('a 1 MiB update then thousands of 64 KiB updates on other instances neither throw nor corrupt', () => {
    freshXsalsa20Views()
    const key = new Uint8Array(32).fill(7)
    const nonce = (n: number): Uint8Array => new Uint8Array(24).fill(n)
    // two connections' directions: what one end encrypts, the other end's instance decrypts
    const enc = [make(nonce(1), key), make(nonce(2), key), make(nonce(3), key)]
    const dec = [make(nonce(1), key), make(nonce(2), key), make(nonce(3), key)]
    const big = new Uint8Array(1 << 20).map((_, i) => i * 31)
    expect(same(dec[0].update(enc[0].update(big)), big)).toBe(true)
    const small = new Uint8Array(65536).map((_, i) => i * 7)
    // without the fix this throws "WebAssembly.Memory.grow(): Maximum memory size exceeded" within ~100 rounds here
    for (let round = 0; round < 400; round++) {
      for (let k = 0; k < 3; k++) {
        const out = dec[k].update(enc[k].update(small))
        if (round % 100 === 0) expect(same(out, small)).toBe(true)
      }
    }
    expect(same(dec[2].update(enc[2].update(big)), big)).toBe(true)
    for (const c of [...enc, ...dec]) c.finalize()
  })
})
