/** Versioned protocol id: deliver a value (replication, or ahead of a claimed consumer's request). */
export const PUSH_PROTOCOL = '/dflow/store/push/1.0.0'
