/** No holder (given, placed or found through the DHT) could deliver the value. */
export class ValueNotFoundError extends Error {
  static readonly NAME = 'ValueNotFoundError'
  constructor (message: string) { super(message); this.name = ValueNotFoundError.NAME }
}

/** A block's bytes do not hash to its CID (or a chunked root is inconsistent). */
export class BlockVerificationError extends Error {
  static readonly NAME = 'BlockVerificationError'
  constructor (message: string) { super(message); this.name = BlockVerificationError.NAME }
}

/** The capacity limit cannot be met because everything left is pinned or in transfer. */
export class StoreFullError extends Error {
  static readonly NAME = 'StoreFullError'
  constructor (message: string) { super(message); this.name = StoreFullError.NAME }
}

/** The service was used before start() or after stop(). */
export class NotStartedError extends Error {
  static readonly NAME = 'NotStartedError'
  constructor (message = 'DStore is not started') { super(message); this.name = NotStartedError.NAME }
}

/** An awaited push was refused: the receiver was not chosen to hold the value and holds no claim on it. */
export class PushRejectedError extends Error {
  static readonly NAME = 'PushRejectedError'
  constructor (message: string) { super(message); this.name = PushRejectedError.NAME }
}
