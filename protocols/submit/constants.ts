export const SUBMIT_PROTOCOL = '/dflow/submit/1.0.0'
/** One request or answer; inputs beyond this belong in DStore, passed as {"$cid"} */
export const MAX_SUBMIT_MESSAGE_BYTES = 64 * 1024 * 1024
export const SUBMIT_TIMEOUT_MS = 30_000
