/** SWIM-style membership probes: ping, indirect ping through another peer, piggybacked membership news. */
export const PROBE_PROTOCOL = '/dflow/probe/1.0.0'
/** One probe message; a handful of updates ride along, never more than MAX_UPDATES. */
export const MAX_PROBE_MESSAGE_BYTES = 16 * 1024
export const MAX_UPDATES = 32
/** Addresses an update may carry for its peer, and their length: 32 updates stay well under the message limit. */
export const MAX_MEMBER_ADDRS = 2
export const MAX_ADDR_LENGTH = 128
/** Upper bound of a suspicion's age on the wire (ms): far above any suspicion time, below nonsense. */
export const MAX_SUSPICION_AGE_MS = 60_000
/** Upper bound a requester may ask an intermediary to wait for the target (ms). */
export const MAX_INDIRECT_TIMEOUT_MS = 10_000
/**
 * How long a probe may take to reach a peer it has no connection to (peer routing, TCP, handshakes), on top of
 * its answer time. Dialling is not a liveness judgment: when 32 peers start at once on 2 cores a dial takes
 * seconds, and counting it against the probe's 0.5 s made most first probes fail and suspected live peers by
 * the dozen. A dead peer's address refuses the dial at once, so crashes are found as fast as before.
 */
export const PROBE_DIAL_TIMEOUT_MS = 5000
