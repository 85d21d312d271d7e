import { BlockVerificationError } from '../../node/dstore/errors.ts'
import { parseChunkedRoot, verifyBlockNow } from '../../node/dstore/blocks.ts'
import { decodeFrame, encodeBlockFrame, encodeCreditFrame, encodeSharedFrame, encodeStatusFrame, expectFrame, ProtocolMessageError } from './codec.ts'
import { FRAME_BLOCK } from './constants.ts'
import type { BlockReader, BlockWriter } from './index.ts'
import type { AbortOptions, MessageStream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { CID } from 'multiformats/cid'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Thrown by the sender when a block it announced is gone (evicted mid-transfer); the receiver gets an error status. */
export class MissingBlockError extends Error {
  static readonly NAME = 'MissingBlockError'
  constructor (message: string) { super(message); this.name = MissingBlockError.NAME }
}

/** What the sender knows of the value: the root's bytes (when it has them) and its chunks (empty: one block). */
export interface SendPlan { rootBytes?: Uint8Array, chunks: CID[] }

/**
 * Sends a value's blocks, root first, then chunks in the root's order. A block is only sent while the
 * receiver has granted credit for it, so neither side buffers more than `window` blocks. With `shared`
 * (the receiver proved it shares this host), a block held in the shared directory goes as a shared frame:
 * a few bytes naming the file, not its contents. A chunked root always goes as bytes (it is small).
 */
export async function sendBlocks (lp: LengthPrefixedStream<MessageStream>, reader: BlockReader, cid: CID, plan: SendPlan, window: number, options: Required<AbortOptions>, shared = false, head?: Uint8Array): Promise<number> {
  const order = [cid, ...plan.chunks]
  let credits = window
  let blocks = 0
  let sent = 0
  // a shared frame is a few bytes and needs no credit: consecutive ones go out in one write (one noise
  // message, one TCP segment), so a same-host value's frames arrive together, not one event-loop turn each
  // `head` (the fetch's status) goes out with the first frames
  let burst: Array<Uint8Array | Uint8ArrayList> = head != null ? [head] : []
  const flush = async (): Promise<void> => {
    if (burst.length === 0) return
    const frames = burst
    burst = []
    await lp.writeV(frames, options)
  }
  for (let i = 0; i < order.length; i++) {
    const file = shared && (i > 0 || plan.chunks.length === 0) ? reader.sharedFile?.(order[i]) : undefined
    if (file != null) {
      burst.push(encodeSharedFrame(file))
      sent += file.size
      if (burst.length >= SHARED_BURST) await flush()
      continue
    }
    // frames held back would never reach a receiver we now wait on
    if (blocks >= credits) await flush()
    while (blocks >= credits) {
      credits += expectFrame(decodeFrame(await lp.read(options)), 'credit').body.credit
    }
    blocks++
    const bytes = i === 0 && plan.rootBytes != null ? plan.rootBytes : await reader.getBlock(order[i], options)
    if (bytes == null) {
      burst.push(encodeStatusFrame({ status: 'error', message: `block ${order[i]} is no longer held` }))
      await flush()
      throw new MissingBlockError(`block ${order[i]} vanished during transfer`)
    }
    burst.push(encodeBlockFrame(bytes))
    await flush()
    sent += bytes.byteLength
  }
  await flush()
  return sent
}

/** Shared frames written at once (about 60 bytes each). */
const SHARED_BURST = 256

export interface ReceiveResult {
  /** encoded size of the value */
  size: number
  /** number of blocks written */
  blocks: number
  /** blocks taken from the sender's shared directory (same host) */
  sharedBlocks: number
  /**
   * The value's encoding, verified, in one buffer (chunks received or read from shared files into it as they
   * landed): the caller can decode it without reading the blocks back from the store. Absent when shared
   * chunks were only linked (`assemble: false`).
   */
  bytes?: Uint8Array
}

export interface ReceiveOptions {
  /** shared frames are accepted (this side asked for them); otherwise one is a protocol error */
  shared?: boolean
  /** largest value accepted, in bytes (the whole value is assembled in one buffer) */
  maxValueBytes?: number
  /**
   * Read shared chunks into the value's buffer as they are linked (a fetch: its caller decodes the value).
   * A push only stores them: linking is enough. @default true
   */
  assemble?: boolean
}

/**
 * A buffer for a value that will be written whole before anyone reads it (every path checks the bytes
 * written add up to its size). Not zero-filled: a buffer of up to 32 MiB often reuses memory the process
 * freed (glibc's mmap threshold rises to the size of the last large buffer freed), and zeroing it first
 * would be a wasted pass over it.
 */
export function valueBuffer (size: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(size)
  // a plain Uint8Array view: values decoded from it must not come out as Buffers
  return new Uint8Array(b.buffer, b.byteOffset, size)
}

/** Copies a block frame's payload (after the type byte) into `into` at `offset`: the only copy a chunk gets. */
function copyPayload (frame: Uint8ArrayList, into: Uint8Array, offset: number): number {
  let o = offset
  let skip = 1
  for (const part of frame) {
    const p = skip > 0 ? part.subarray(Math.min(skip, part.byteLength)) : part
    skip = Math.max(0, skip - part.byteLength)
    into.set(p, o)
    o += p.byteLength
  }
  return o - offset
}

/**
 * Receives and verifies a value's blocks. The receive loop only copies each chunk once, into the value's
 * buffer; hashing (on the thread pool) and writing run behind it and grant credit as they finish, so at
 * most `window` block frames are in flight or unwritten. The root is written last, after every chunk verified and landed, so a present root
 * means a complete value. The stored chunks are slices of one buffer, so reading the value needs no copy.
 */
export async function receiveBlocks (lp: LengthPrefixedStream<MessageStream>, cid: CID, writer: BlockWriter, window: number, options: Required<AbortOptions>, opts: ReceiveOptions = {}): Promise<ReceiveResult> {
  const first = decodeFrame(await lp.read(options))
  if (first.type === 'shared') {
    if (opts.shared !== true || writer.adoptShared == null) throw new ProtocolMessageError('unexpected shared frame')
    if (first.body.size > (opts.maxValueBytes ?? Number.MAX_SAFE_INTEGER)) throw new BlockVerificationError(`${cid} is ${first.body.size} bytes, more than the ${opts.maxValueBytes} this store accepts`)
    // only a single-block value's root comes as a file (see sendBlocks); adoptShared refuses a chunked root.
    // The file is read once, here: the caller decodes these bytes
    const bytes = valueBuffer(first.body.size)
    await writer.adoptShared(cid, first.body, { ...options, root: true, into: bytes, offset: 0 })
    return { size: first.body.size, blocks: 1, sharedBlocks: 1, bytes }
  }
  const rootBytes = expectFrame(first, 'block').bytes
  verifyBlockNow(cid, rootBytes)
  const root = parseChunkedRoot(cid, rootBytes)
  if (root == null) {
    await writer.putBlock(cid, rootBytes, options)
    return { size: rootBytes.byteLength, blocks: 1, sharedBlocks: 0, bytes: rootBytes }
  }
  if (root.size > (opts.maxValueBytes ?? Number.MAX_SAFE_INTEGER)) throw new BlockVerificationError(`${cid} declares ${root.size} bytes, more than the ${opts.maxValueBytes} this store accepts`)
  const total = root.chunks.length + 1
  // credit is granted as block frames land (verified and written), in batches, from the completions: the
  // receive loop never waits for hashing or writing, and received-but-unwritten data stays within the window.
  // Shared frames take no credit. A sender blocked on credit has `window` landed-or-landing blocks here, so
  // a batch of at most `window` always comes.
  const batch = Math.max(1, Math.floor(window / 4))
  let unGranted = 1 // the root
  let failure: unknown
  const grant = (): void => {
    if (unGranted < batch) return
    const n = Math.min(unGranted, 1024)
    unGranted -= n
    lp.write(encodeCreditFrame(n), options).catch(err => { failure ??= err })
  }
  grant()
  // every chunk lands in this buffer: copied from its frame, or read from its shared file once linked
  const assemble = opts.assemble !== false
  let whole: Uint8Array | undefined
  let size = 0
  let sharedBlocks = 0
  const pending: Array<Promise<void>> = []
  let landed = 1
  const track = (p: Promise<void>, block: boolean): void => {
    pending.push(p.then(() => {
      landed++
      if (block) { unGranted++; if (failure === undefined) grant() }
    }, err => { failure ??= err }))
  }
  for (let i = 0; i < root.chunks.length; i++) {
    if (failure !== undefined) throw failure
    const chunk = root.chunks[i]
    const data = await lp.read(options)
    if (data.byteLength > 0 && data.get(0) === FRAME_BLOCK) {
      const len = data.byteLength - 1
      if (size + len > root.size) throw new BlockVerificationError(`chunks of ${cid} exceed the declared size ${root.size}`)
      whole ??= valueBuffer(root.size)
      copyPayload(data, whole, size)
      const bytes = whole.subarray(size, size + len)
      // hashed here, in place, while the chunk is still in cache; the write runs behind the loop
      verifyBlockNow(chunk, bytes)
      track(writer.putBlock(chunk, bytes, options), true)
      size += len
    } else {
      const frame = decodeFrame(data)
      if (frame.type !== 'shared' || opts.shared !== true || writer.adoptShared == null) expectFrame(frame, 'block')
      const info = (frame as { body: { ino: bigint, size: number, mtimeNs: bigint } }).body
      if (size + info.size > root.size) throw new BlockVerificationError(`chunks of ${cid} exceed the declared size ${root.size}`)
      if (assemble) whole ??= valueBuffer(root.size)
      track(writer.adoptShared!(chunk, info, assemble ? { ...options, into: whole, offset: size } : options), false)
      size += info.size
      sharedBlocks++
    }
  }
  await Promise.all(pending)
  if (failure !== undefined) throw failure
  if (landed !== total) throw new BlockVerificationError(`only ${landed - 1} of ${total - 1} chunks of ${cid} landed`)
  if (size !== root.size) throw new BlockVerificationError(`chunks of ${cid} total ${size} bytes, root declares ${root.size}`)
  await writer.putBlock(cid, rootBytes, options)
  return { size, blocks: total, sharedBlocks, bytes: assemble || sharedBlocks === 0 ? whole : undefined }
}
