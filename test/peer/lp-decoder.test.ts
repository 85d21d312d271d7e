import { describe, expect, it, vi } from 'vitest'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { cheapLengthPrefixEnd } from '../../node/network/lp-decoder.ts'

/** noise's framing: a 2-byte big-endian length, then the data */
function frame (data: number[]): number[] { return [data.length >> 8, data.length & 0xff, ...data] }

describe('LengthPrefixedDecoder: the end of a read builds no Error', () => {
  it('decodes the same frames from any split of the bytes, and never asks the length decoder about an empty buffer', () => {
    cheapLengthPrefixEnd()
    const seen: number[] = [] // the decoder's buffer is one object, consumed later: record its size at the call
    const lengthDecoder = vi.fn((data: Uint8ArrayList | Uint8Array) => {
      seen.push(data.byteLength)
      if (data.length < 2) throw new RangeError('Could not decode int16BE')
      return data instanceof Uint8Array ? (data[0] << 8) + data[1] : data.getUint16(0)
    })
    const bytes = [...frame([1, 2, 3]), ...frame([]), ...frame([4]), ...frame([5, 6, 7, 8, 9])]
    for (const cut of [[bytes.length], [1, bytes.length], [2, 5, 6, bytes.length], [3, 4, 9, 10, bytes.length]]) {
      lengthDecoder.mockClear()
      seen.length = 0
      const decoder = new LengthPrefixedDecoder({ lengthDecoder, encodingLength: () => 2 })
      const out: number[][] = []
      let from = 0
      for (const to of cut) {
        for (const buf of decoder.decode(Uint8Array.from(bytes.slice(from, to)))) out.push([...(buf as Uint8ArrayList).subarray()])
        from = to
      }
      // empty frames are not yielded (the library's own rule)
      expect(out).toEqual([[1, 2, 3], [4], [5, 6, 7, 8, 9]])
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every(n => n > 0)).toBe(true)
    }
  })

  it('still rejects a frame longer than maxDataLength', () => {
    cheapLengthPrefixEnd()
    const decoder = new LengthPrefixedDecoder({ lengthDecoder: (d: Uint8ArrayList) => { if (d.length < 2) throw new RangeError('short'); return d.getUint16(0) }, encodingLength: () => 2, maxDataLength: 4 })
    expect(() => [...decoder.decode(Uint8Array.from(frame([1, 2, 3, 4, 5])))]).toThrow(/length/i)
  })
})
