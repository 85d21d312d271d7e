import { BlockVerificationError } from '../../node/dstore/errors.ts'
import { parseChunkedRoot, verifyBlock } from '../../node/dstore/blocks.ts'
import { decodeFrame, encodeBlockFrame, encodeCreditFrame, encodeStatusFrame, expectFrame } from './codec.ts'
import type { BlockReader, BlockWriter } from './index.ts'
import type { AbortOptions, MessageStream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { CID } from 'multiformats/cid'

/** Thrown by the sender when a block it announced is gone (evicted mid-transfer); the receiver gets an error status. */
export class MissingBlockError extends Error {
  static readonly NAME = 'MissingBlockError'
  constructor (message: string) { super(message); this.name = MissingBlockError.NAME }
}

/**
 * Sends a value's blocks, root first, then chunks in the root's order. A block is only sent while the
 * receiver has granted credit for it, so neither side buffers more than `window` blocks.
 */
export async function sendBlocks (lp: LengthPrefixedStream<MessageStream>, reader: BlockReader, cid: CID, rootBytes: Uint8Array, window: number, options: Required<AbortOptions>): Promise<number> {
  const order = [cid, ...(parseChunkedRoot(cid, rootBytes)?.chunks ?? [])]
  let credits = window
  let sent = 0
  for (let i = 0; i < order.length; i++) {
    while (i >= credits) {
      credits += expectFrame(decodeFrame(await lp.read(options)), 'credit').body.credit
    }
    const bytes = i === 0 ? rootBytes : await reader.getBlock(order[i], options)
    if (bytes == null) {
      await lp.write(encodeStatusFrame({ status: 'error', message: `block ${order[i]} is no longer held` }), options)
      throw new MissingBlockError(`block ${order[i]} vanished during transfer`)
    }
    await lp.write(encodeBlockFrame(bytes), options)
    sent += bytes.byteLength
  }
  return sent
}

export interface ReceiveResult {
  /** encoded size of the value */
  size: number
  /** number of blocks written */
  blocks: number
}

/**
 * Receives and verifies a value's blocks. Chunks are written as they arrive (never the whole value in
 * memory); the root is written last so a present root means a complete value.
 */
export async function receiveBlocks (lp: LengthPrefixedStream<MessageStream>, cid: CID, writer: BlockWriter, window: number, options: Required<AbortOptions>): Promise<ReceiveResult> {
  const rootBytes = expectFrame(decodeFrame(await lp.read(options)), 'block').bytes
  await verifyBlock(cid, rootBytes)
  const root = parseChunkedRoot(cid, rootBytes)
  if (root == null) {
    await writer.putBlock(cid, rootBytes, options)
    return { size: rootBytes.byteLength, blocks: 1 }
  }
  const total = root.chunks.length + 1
  const grant = async (processed: number): Promise<void> => {
    // block `processed` is done: unlock block processed + window, if there is one
    if (processed + window < total) await lp.write(encodeCreditFrame(1), options)
  }
  await grant(0)
  let size = 0
  for (let i = 0; i < root.chunks.length; i++) {
    const bytes = expectFrame(decodeFrame(await lp.read(options)), 'block').bytes
    await verifyBlock(root.chunks[i], bytes)
    size += bytes.byteLength
    if (size > root.size) throw new BlockVerificationError(`chunks of ${cid} exceed the declared size ${root.size}`)
    await writer.putBlock(root.chunks[i], bytes, options)
    await grant(i + 1)
  }
  if (size !== root.size) throw new BlockVerificationError(`chunks of ${cid} total ${size} bytes, root declares ${root.size}`)
  await writer.putBlock(cid, rootBytes, options)
  return { size, blocks: total }
}
