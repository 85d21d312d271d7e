import * as dagCbor from '@ipld/dag-cbor'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { cidOfBytes, encodeValue, type Value } from '../values/codec.ts'
import { BlockVerificationError } from './errors.ts'

export const CHUNKED_TAG = 'chunked/1'

/** Root block of a value whose encoding exceeds the chunk size; its CID is the value's key. */
export interface ChunkedRoot {
  dflow: typeof CHUNKED_TAG
  size: number
  chunks: CID[]
}

export interface Block { cid: CID, bytes: Uint8Array }

export interface EncodedValue {
  cid: CID
  /** encoded size of the value (sum of chunks when chunked) */
  size: number
  /** the encoded value (what travels inline when small) */
  encoded: Uint8Array
  /** chunks first, root last: writing in this order means "root present" implies "value complete" */
  blocks: Block[]
}

/** Store key of a block: the multihash, as interface-blockstore implementations key by it. */
export function blockKey (cid: CID): string {
  return base32.encode(cid.multihash.bytes)
}

export async function encodeBlocks (value: Value, chunkSize: number): Promise<EncodedValue> {
  const encoded = encodeValue(value)
  if (encoded.byteLength <= chunkSize) {
    const cid = await cidOfBytes(encoded)
    return { cid, size: encoded.byteLength, encoded, blocks: [{ cid, bytes: encoded }] }
  }
  const blocks: Block[] = []
  for (let off = 0; off < encoded.byteLength; off += chunkSize) {
    const bytes = encoded.subarray(off, Math.min(off + chunkSize, encoded.byteLength))
    blocks.push({ cid: await cidOfBytes(bytes, raw.code), bytes })
  }
  const root: ChunkedRoot = { dflow: CHUNKED_TAG, size: encoded.byteLength, chunks: blocks.map(b => b.cid) }
  const rootBytes = dagCbor.encode(root)
  const cid = await cidOfBytes(rootBytes)
  blocks.push({ cid, bytes: rootBytes })
  return { cid, size: encoded.byteLength, encoded, blocks }
}

/**
 * A dag-cbor block is a chunked root when it has exactly the root's shape. Workflow values cannot contain
 * CID links, so no value can be mistaken for a root.
 */
export function parseChunkedRoot (cid: CID, bytes: Uint8Array): ChunkedRoot | null {
  if (cid.code !== dagCbor.code) return null
  let obj: any
  try { obj = dagCbor.decode(bytes) } catch { return null }
  if (obj === null || typeof obj !== 'object' || obj.dflow !== CHUNKED_TAG || !Array.isArray(obj.chunks)) return null
  if (Object.keys(obj).length !== 3 || typeof obj.size !== 'number' || !Number.isSafeInteger(obj.size) || obj.size < 0) {
    throw new BlockVerificationError(`malformed chunked root ${cid}`)
  }
  const chunks: CID[] = []
  for (const c of obj.chunks) {
    const chunk = CID.asCID(c)
    if (chunk == null || chunk.code !== raw.code) throw new BlockVerificationError(`chunked root ${cid} lists a non-raw chunk`)
    chunks.push(chunk)
  }
  return { dflow: CHUNKED_TAG, size: obj.size, chunks }
}

/** Only CIDv1 sha2-256 keys are produced and accepted. */
export async function verifyBlock (cid: CID, bytes: Uint8Array): Promise<void> {
  if (cid.multihash.code !== sha256.code) throw new BlockVerificationError(`unsupported hash 0x${cid.multihash.code.toString(16)} in ${cid}`)
  const digest = await sha256.digest(bytes)
  const a = digest.digest
  const b = cid.multihash.digest
  if (a.byteLength !== b.byteLength || !a.every((x, i) => x === b[i])) throw new BlockVerificationError(`block does not hash to ${cid}`)
}
