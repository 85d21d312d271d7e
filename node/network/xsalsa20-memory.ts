// @ts-expect-error xsalsa20 (@libp2p/pnet's cipher) ships no types; only its prototype is touched here
import xsalsa20 from 'xsalsa20'

/**
 * Keeps xsalsa20's WebAssembly memory views fresh, so a private network (@libp2p/pnet) survives large writes.
 *
 * xsalsa20 1.2 runs every cipher instance (two per pnet connection) in one WebAssembly.Memory of at most 1000
 * pages (62.5 MiB), starting at 10. Each instance keeps its own Uint8Array view of that memory, taken when it was
 * made or when it last grew it. A buffer larger than the memory (a DStore chunk frame of 1 MiB: the first write
 * over ~640 KiB) makes that instance grow it, which detaches every other instance's view: its length reads 0, so
 * its next update "grows" the memory again by the whole size it needs, detaching the others in turn. Within a
 * few hundred TCP reads the memory hits its maximum and `update` throws a RangeError from the socket's data
 * handler: the peer process dies (seen in `dflow bench --no-shared-store --size-scale 0.1`, 2-3 of 4 peers dead).
 * Here an instance whose view is not the memory's current buffer takes a new view first; growth then happens
 * only when the memory really is too small. Wraps the prototype once at start (like lp-decoder.ts); if an upgrade
 * changes the shape (no WASM path, other field names), nothing is wrapped.
 */
interface WasmXor { _memory: Uint8Array, update: (input: Uint8Array, output: Uint8Array) => void, realloc: (size: number) => void }

let installed = false
/** the memory's buffer as of the last view any instance took (the others are detached) */
let current: ArrayBufferLike | undefined

export function freshXsalsa20Views (): void {
  if (installed) return
  let probe: { _xor?: WasmXor | null, finalize?: () => void } | undefined
  try { probe = (xsalsa20 as (nonce: Uint8Array, key: Uint8Array) => typeof probe)(new Uint8Array(24), new Uint8Array(32)) } catch { return }
  const xor = probe?._xor
  const proto = xor != null ? Object.getPrototypeOf(xor) as WasmXor : undefined
  const view = xor?._memory
  // the probe's slot in the memory goes back to the library's free list
  try { probe?.finalize?.() } catch {}
  if (proto === undefined || typeof proto.update !== 'function' || typeof proto.realloc !== 'function' || !(view instanceof Uint8Array)) return
  installed = true
  current = view.buffer
  const update = proto.update
  const realloc = proto.realloc
  proto.realloc = function (this: WasmXor, size: number) {
    realloc.call(this, size)
    current = this._memory.buffer
  }
  proto.update = function (this: WasmXor, input: Uint8Array, output: Uint8Array) {
    if (current !== undefined && this._memory.buffer !== current) this._memory = new Uint8Array(current)
    update.call(this, input, output)
  }
}
