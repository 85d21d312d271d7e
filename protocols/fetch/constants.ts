/** Versioned protocol id: a holder answers a CID with a status and then the value's blocks. */
export const FETCH_PROTOCOL = '/dflow/store/fetch/1.0.0'

/** Frame types: the first byte of every length-prefixed frame on the fetch and push protocols. */
export const FRAME_REQUEST = 0x00
export const FRAME_STATUS = 0x01
export const FRAME_BLOCK = 0x02
export const FRAME_CREDIT = 0x03
/** Same-host only: the block is a file in the holder's shared directory (inode, size, mtime), not bytes. */
export const FRAME_SHARED = 0x04

/** Blocks in flight before the receiver grants more (bounds the receiver's buffered bytes). */
export const DEFAULT_WINDOW = 8
/** @default 1 MiB, the DStore default chunk size */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024
/** A frame carries at most one block plus framing slack. */
export const DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_CHUNK_SIZE + 64 * 1024
/** @default 60 s for a whole transfer */
export const DEFAULT_TIMEOUT_MS = 60_000
/** Control messages (request, status, credit, push header) are tiny; anything larger is malformed. */
export const MAX_CONTROL_BYTES = 16 * 1024
