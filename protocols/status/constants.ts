export const STATUS_PROTOCOL = '/dflow/status/1.0.0'
/** an answer is a few hundred bytes; anything much larger is not a status */
export const MAX_STATUS_MESSAGE_BYTES = 16 * 1024
export const STATUS_TIMEOUT_MS = 3_000
