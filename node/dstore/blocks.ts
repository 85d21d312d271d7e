import * as dagCbor from '@ipld/dag-cbor'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import * as Digest from 'multiformats/hashes/digest'
import { hash as hashNow, webcrypto } from 'node:crypto'
import { cidOfBytes, encodeValue, type Value } from '../values/codec.ts'
import { BlockVerificationError } from './errors.ts'

export const CHUNKED_TAG = 'chunked/1'

/**
 * "Fits one chunk" is about the payload: a byte string (or text) of `chunkSize` bytes encodes to
 * `chunkSize` + its CBOR header (up to 9 bytes) and still is one block. For chunked values the header
 * rides in the last chunk, so every chunk holds `chunkSize` payload bytes except the last.
 */
export function headerLength (value: Value): number {
  if (!(value instanceof Uint8Array) && typeof value !== 'string') return 0
  const n = value instanceof Uint8Array ? value.byteLength : Buffer.byteLength(value)
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

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
  /** the parsed root when chunked (saves parsing it again) */
  root?: ChunkedRoot
}

/** Store key of a block: the multihash, as interface-blockstore implementations key by it. */
export function blockKey (cid: CID): string {
  return base32.encode(cid.multihash.bytes)
}

/** CID of a block from its store key (the inverse of blockKey for the codecs DStore writes). */
export function cidOfKey (key: string, codec: number): CID {
  return CID.createV1(codec, Digest.decode(base32.decode(key)))
}

/**
 * [start, end) byte ranges of the chunks of an encoding of `size` bytes whose header is `header` bytes
 * (one range when the payload fits one chunk).
 */
export function chunkRanges (size: number, chunkSize: number, header = 0): Array<[number, number]> {
  if (size - header <= chunkSize) return [[0, size]]
  const n = Math.ceil((size - header) / chunkSize)
  const out: Array<[number, number]> = []
  for (let i = 0; i < n; i++) out.push([i * chunkSize, i === n - 1 ? size : (i + 1) * chunkSize])
  return out
}

/** Bytes hashed on the event loop between two yields when a put chunks a value (~2-5 ms of SHA-256). */
const YIELD_BYTES = 4 * 1024 * 1024

export async function encodeBlocks (value: Value, chunkSize: number): Promise<EncodedValue> {
  const encoded = encodeValue(value)
  const ranges = chunkRanges(encoded.byteLength, chunkSize, headerLength(value))
  if (ranges.length === 1) {
    const cid = await cidOfBytes(encoded)
    return { cid, size: encoded.byteLength, encoded, blocks: [{ cid, bytes: encoded }] }
  }
  // hashed in place (node:crypto reads the view; WebCrypto would copy each chunk into fresh memory first, a
  // page-faulting pass over the whole value on this VM), yielding to the event loop every YIELD_BYTES
  const blocks: Block[] = []
  let sinceYield = 0
  for (const [a, b] of ranges) {
    if (sinceYield >= YIELD_BYTES) { await new Promise(resolve => setImmediate(resolve)); sinceYield = 0 }
    const bytes = encoded.subarray(a, b)
    blocks.push({ cid: CID.createV1(raw.code, Digest.create(sha256.code, hashNow('sha256', bytes, 'buffer'))), bytes })
    sinceYield += bytes.byteLength
  }
  const root: ChunkedRoot = { dflow: CHUNKED_TAG, size: encoded.byteLength, chunks: blocks.map(b => b.cid) }
  const rootBytes = dagCbor.encode(root)
  const cid = await cidOfBytes(rootBytes)
  blocks.push({ cid, bytes: rootBytes })
  return { cid, size: encoded.byteLength, encoded, blocks, root }
}

/**
 * A dag-cbor block is a chunked root when it has exactly the root's shape. Workflow values cannot contain
 * CID links, so no value can be mistaken for a root. A root is a 3-entry CBOR map (first byte 0xa3): any
 * other block is answered without decoding it, so a 1 MiB single-block value is not parsed to learn that.
 */
export function parseChunkedRoot (cid: CID, bytes: Uint8Array): ChunkedRoot | null {
  if (cid.code !== dagCbor.code || bytes.byteLength === 0 || bytes[0] !== 0xa3) return null
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

/**
 * SHA-256 off the event loop: WebCrypto digests run on libuv's thread pool, so a 1 MiB chunk costs the
 * event loop a copy (~0.1 ms), not the ~0.6 ms of hashing, and two chunks hash in parallel with the
 * receive loop. Small blocks are hashed inline (the thread hop costs more than the hash).
 */
const INLINE_HASH_BYTES = 64 * 1024

async function digestOf (bytes: Uint8Array): Promise<Digest.Digest<typeof sha256.code, number>> {
  if (bytes.byteLength <= INLINE_HASH_BYTES) return sha256.digest(bytes) as Promise<Digest.Digest<typeof sha256.code, number>>
  const d = new Uint8Array(await webcrypto.subtle.digest('SHA-256', bytes))
  return Digest.create(sha256.code, d)
}

/** Only CIDv1 sha2-256 keys are produced and accepted. */
export async function verifyBlock (cid: CID, bytes: Uint8Array): Promise<void> {
  if (cid.multihash.code !== sha256.code) throw new BlockVerificationError(`unsupported hash 0x${cid.multihash.code.toString(16)} in ${cid}`)
  const a = (await digestOf(bytes)).digest
  const b = cid.multihash.digest
  if (a.byteLength !== b.byteLength || !a.every((x, i) => x === b[i])) throw new BlockVerificationError(`block does not hash to ${cid}`)
}

/**
 * The synchronous form, for a block that just landed in memory: node:crypto hashes the view in place (no
 * copy; WebCrypto copies its input first, and on a fresh buffer that copy costs page faults as well).
 * ~0.6 ms of event loop per MiB, one chunk at a time, so the loop is never held for long.
 */
export function verifyBlockNow (cid: CID, bytes: Uint8Array): void {
  if (cid.multihash.code !== sha256.code) throw new BlockVerificationError(`unsupported hash 0x${cid.multihash.code.toString(16)} in ${cid}`)
  const a = hashNow('sha256', bytes, 'buffer')
  const b = cid.multihash.digest
  if (a.byteLength !== b.byteLength || !a.equals(b)) throw new BlockVerificationError(`block does not hash to ${cid}`)
}
