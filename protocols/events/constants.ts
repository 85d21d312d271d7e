/** The gossipsub topic every peer subscribes to: readiness events, claims and heartbeats. */
export const EVENTS_TOPIC = 'dflow/events/1.0.0'

/** Version of the event wire format; a message with another `v` is dropped. */
export const EVENTS_VERSION = 1

/** Upper bound for one event on the wire (inline values are far smaller). */
export const MAX_EVENT_BYTES = 1024 * 1024

/** Upper bound for list lengths, foreach indexes, element numbers and stream counts: a peer loops over them. */
export const MAX_COUNT = 1_000_000

/** Upper bound for a request's deadline (30 days). */
export const MAX_DEADLINE_MS = 30 * 24 * 3600 * 1000
