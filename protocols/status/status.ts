import * as dagCbor from '@ipld/dag-cbor'
import { lpStream } from '@libp2p/utils'
import { MAX_STATUS_MESSAGE_BYTES, STATUS_PROTOCOL, STATUS_TIMEOUT_MS } from './constants.ts'
import type { PeerStatusInfo, StatusLibp2p, StatusSource } from './index.ts'
import type { Logger, PeerId, Stream } from '@libp2p/interface'
import { anyWithTimeout } from '../util/timeout-signal.ts'

/** A peer's status answer was not a status (wrong shape, types or ranges). */
export class StatusAnswerError extends Error {
  static readonly NAME = 'StatusAnswerError'
  constructor (message: string) {
    super(message)
    this.name = StatusAnswerError.NAME
  }
}

const FIELDS = ['slots', 'busy', 'storeBytes', 'storeCapacity', 'connections', 'startedAt', 'rss'] as const

/** Checks an answer from the network: every field a non-negative safe integer, nothing else kept. */
export function checkStatusInfo (msg: unknown): PeerStatusInfo {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new StatusAnswerError('status answer is not a map')
  const m = msg as Record<string, unknown>
  const out: Record<string, number> = {}
  for (const f of FIELDS) {
    const v = m[f]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new StatusAnswerError(`status answer: ${f} must be a non-negative integer, got ${JSON.stringify(v)}`)
    out[f] = v
  }
  return out as unknown as PeerStatusInfo
}

/** Serves this peer's status and asks other peers for theirs. */
export class StatusProtocol {
  private controller = new AbortController()

  constructor (private readonly libp2p: StatusLibp2p, private readonly source: StatusSource, private readonly log: Logger) {}

  async start (): Promise<void> {
    if (this.controller.signal.aborted) this.controller = new AbortController()
    await this.libp2p.handle(STATUS_PROTOCOL, (stream: Stream) => { void this.serve(stream) }, { maxInboundStreams: 8 })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await this.libp2p.unhandle(STATUS_PROTOCOL)
  }

  private async serve (stream: Stream): Promise<void> {
    const options = { signal: anyWithTimeout([this.controller.signal], STATUS_TIMEOUT_MS) }
    const lp = lpStream(stream, { maxDataLength: MAX_STATUS_MESSAGE_BYTES })
    try {
      const msg = dagCbor.decode<unknown>((await lp.read(options)).subarray())
      if (msg === null || typeof msg !== 'object' || (msg as { v?: unknown }).v !== 1) throw new StatusAnswerError('status request must be { v: 1 }')
      await lp.write(dagCbor.encode(this.source()), options)
      await stream.close(options)
    } catch (err) {
      this.log('status stream failed: %s', (err as Error).message)
      stream.abort(err as Error)
    }
  }

  /** Ask `peer` for its status; rejects on timeout (STATUS_TIMEOUT_MS), abort or a malformed answer. */
  async ask (peer: PeerId, signal?: AbortSignal): Promise<PeerStatusInfo> {
    const options = { signal: anyWithTimeout([this.controller.signal, signal], STATUS_TIMEOUT_MS) }
    const stream = await this.libp2p.dialProtocol(peer, STATUS_PROTOCOL, options)
    const lp = lpStream(stream, { maxDataLength: MAX_STATUS_MESSAGE_BYTES })
    try {
      await lp.write(dagCbor.encode({ v: 1 }), options)
      const answer = checkStatusInfo(dagCbor.decode<unknown>((await lp.read(options)).subarray()))
      await stream.close(options)
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}


