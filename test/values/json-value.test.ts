import { describe, expect, it } from 'vitest'
import { base64 } from 'multiformats/bases/base64'
import { base64Unpadded, fromJsonValue, toJsonValue } from '../../node/values/codec.ts'
import { mulberry32 } from '../../node/util/prng.ts'

describe('toJsonValue: bytes as unpadded base64', () => {
  it('writes what multiformats\' base64 writes, for every length mod 3 and for views into larger buffers', () => {
    const rnd = mulberry32(7)
    for (let n = 0; n <= 70; n++) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256))
      expect(base64Unpadded(bytes)).toBe(base64.baseEncode(bytes))
      // a view at an offset into a larger buffer encodes only its own bytes
      const outer = new Uint8Array(n + 5)
      outer.set(bytes, 3)
      expect(base64Unpadded(outer.subarray(3, 3 + n))).toBe(base64.baseEncode(bytes))
    }
  })

  it('round-trips through fromJsonValue, nested and large', () => {
    const big = Uint8Array.from({ length: 300_001 }, (_, i) => (i * 31 + 7) & 255)
    const value = { a: [big.subarray(1, 4), { b: big }], c: 'x', d: null }
    const json = JSON.parse(JSON.stringify(toJsonValue(value)))
    expect(json.a[0]).toEqual({ $bytes: base64.baseEncode(big.subarray(1, 4)) })
    expect(fromJsonValue(json)).toEqual({ a: [big.subarray(1, 4), { b: big }], c: 'x', d: null })
  })
})
