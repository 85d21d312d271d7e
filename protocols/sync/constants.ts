/** Versioned protocol id: anti-entropy between two peers' per-request event logs. */
export const SYNC_PROTOCOL = '/dflow/sync/1.0.0'

/** An event id: the first 16 bytes of the sha-256 of its canonical dag-cbor encoding. */
export const SYNC_ID_BYTES = 16

/** Largest message either side accepts (the length prefix is checked before anything is buffered). */
export const MAX_SYNC_MESSAGE_BYTES = 4 * 1024 * 1024

/**
 * What a sender puts in one message of ids or events. It leaves room for the framing under
 * MAX_SYNC_MESSAGE_BYTES; what does not fit waits for the next exchange (anti-entropy converges over rounds).
 */
export const SYNC_BATCH_BYTES = 3 * 1024 * 1024

/** Requests named in one message (digests, id lists, wants). */
export const MAX_SYNC_REQUESTS = 512

/** Ids in one request's list (2 MiB of ids; a longer log sends its first ones, the rest look missing and come again, deduplicated). */
export const MAX_SYNC_IDS_PER_REQUEST = 131_072

/** Events carried in one message. */
export const MAX_SYNC_EVENTS = 8192

/** Each read waits at most this long for the other side's next message. */
export const SYNC_READ_TIMEOUT_MS = 10_000

/** A whole exchange (four messages) ends within this, whatever the reads do. */
export const SYNC_EXCHANGE_TIMEOUT_MS = 30_000

/** Inbound exchanges served at once per connection: more are refused by libp2p, not queued in memory. */
export const SYNC_MAX_INBOUND_STREAMS = 4
