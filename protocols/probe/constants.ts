/** SWIM-style membership probes: ping, indirect ping through another peer, piggybacked membership news. */
export const PROBE_PROTOCOL = '/dflow/probe/1.0.0'
/** One probe message; a handful of updates ride along, never more than MAX_UPDATES. */
export const MAX_PROBE_MESSAGE_BYTES = 16 * 1024
export const MAX_UPDATES = 32
/** Upper bound a requester may ask an intermediary to wait for the target (ms). */
export const MAX_INDIRECT_TIMEOUT_MS = 10_000
