import { LengthPrefixedDecoder } from '@libp2p/utils'

/**
 * Makes @libp2p/utils' LengthPrefixedDecoder stop at the end of its buffer without building an Error.
 *
 * Noise decrypts each TCP read through a LengthPrefixedDecoder: it decodes frames until its length decoder throws a
 * RangeError, which it takes for "wait for more bytes". Every read ends that way: once the last whole frame is taken,
 * the decoder is called on an empty buffer, and noise's 2-byte length decoder throws `RangeError('Could not decode
 * int16BE')`, whose construction captures a stack trace of some 30 frames. On an idle peer (two probes a second) that
 * was 6% of its CPU (perf of a 4-peer testnet at rest). Here the instance's length decoder is wrapped once so that an
 * empty buffer throws one RangeError made in advance, which the decoder's catch treats exactly as before; any other
 * input goes to the library's own length decoder. Wraps the prototype at start; if an upgrade
 * changes the shape, nothing is wrapped and nothing breaks.
 */
const NEED_MORE = new RangeError('length-prefixed decoder: need more bytes')
const WRAPPED = Symbol('dflow.lengthDecoderWrapped')
let installed = false

type LengthDecoder = ((data: { byteLength: number }) => number) & { [WRAPPED]?: true }
interface DecoderLike { lengthDecoder?: LengthDecoder, decode: (buf: unknown) => Generator<unknown> }

export function cheapLengthPrefixEnd (): void {
  if (installed) return
  const proto = (LengthPrefixedDecoder as unknown as { prototype?: DecoderLike } | undefined)?.prototype
  if (proto === undefined || typeof proto.decode !== 'function') return
  installed = true
  const original = proto.decode
  proto.decode = function (this: DecoderLike, buf: unknown) {
    const inner = this.lengthDecoder
    if (typeof inner === 'function' && inner[WRAPPED] !== true) {
      const wrapped: LengthDecoder = (data) => {
        // nothing to decode: the library's decoders would throw a RangeError here too
        if (data.byteLength === 0) throw NEED_MORE
        return inner(data)
      }
      wrapped[WRAPPED] = true
      this.lengthDecoder = wrapped
    }
    return original.call(this, buf)
  }
}
