import { lpStream } from '@libp2p/utils'
import { MAX_SUBMIT_MESSAGE_BYTES, SUBMIT_PROTOCOL, SUBMIT_TIMEOUT_MS } from './constants.ts'
import type { SubmitAnswer, SubmitMessage, SubmitTarget } from './index.ts'
import type { DflowLibp2p } from '../../node/network/libp2p.ts'
import type { Connection, Logger, PeerId, Stream } from '@libp2p/interface'
import { decodeEvent } from '../events/index.ts'
import { decodeSubmitAnswer, decodeSubmitMessage, encodeSubmitAnswer, encodeSubmitMessage, SubmitMessageError } from './codec.ts'
import { anyWithTimeout } from '../util/timeout-signal.ts'

export class SubmitRemoteError extends Error {
  static readonly NAME = 'SubmitRemoteError'
  readonly status: string
  constructor (status: string, message: string) {
    super(message)
    this.name = SubmitRemoteError.NAME
    this.status = status
  }
}

/** Serves submit/status/logs to other peers, and asks them. */
export class SubmitProtocol {
  private readonly controller = new AbortController()

  constructor (private readonly libp2p: DflowLibp2p, private readonly target: SubmitTarget, private readonly log: Logger) {}

  async start (): Promise<void> {
    await this.libp2p.handle(SUBMIT_PROTOCOL, (stream: Stream, connection: Connection) => { void this.serve(stream, connection.remotePeer) }, { maxInboundStreams: 64 })
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await this.libp2p.unhandle(SUBMIT_PROTOCOL)
  }

  private async answer (msg: SubmitMessage, from: PeerId): Promise<SubmitAnswer> {
    if (msg.op === 'announce') {
      const event = decodeEvent(msg.event)
      if (event.type !== 'request-started') return { status: 'bad_request', message: `announce carries ${event.type}, not request-started` }
      if (event.from !== from.toString()) return { status: 'bad_request', message: `announce of a request started by ${event.from} came from ${from.toString()}` }
      this.target.announce(event)
      return { status: 'ok', requestId: event.request }
    }
    if (msg.op === 'submit') {
      const { op, ...opts } = msg
      void op
      return { status: 'ok', requestId: await this.target.submit(opts) }
    }
    if (msg.op === 'logs') return { status: 'ok', logs: this.target.logs(msg.requestId) }
    const view = await this.target.view(msg.requestId)
    return view === undefined ? { status: 'not_found', message: `no request ${msg.requestId}` } : { status: 'ok', view }
  }

  private async serve (stream: Stream, from: PeerId): Promise<void> {
    const options = { signal: anyWithTimeout([this.controller.signal], SUBMIT_TIMEOUT_MS) }
    const lp = lpStream(stream, { maxDataLength: MAX_SUBMIT_MESSAGE_BYTES })
    try {
      let answer: SubmitAnswer
      try {
        const msg = decodeSubmitMessage((await lp.read(options)).subarray())
        answer = await this.answer(msg, from)
      } catch (err) {
        answer = { status: err instanceof SubmitMessageError ? 'bad_request' : 'error', message: (err as Error).message }
      }
      await lp.write(encodeSubmitAnswer(answer), options)
      await stream.close(options)
    } catch (err) {
      this.log('submit stream failed: %s', (err as Error).message)
      stream.abort(err as Error)
    }
  }

  /** Ask `peer`; throws SubmitRemoteError for a non-ok answer. */
  async call (peer: PeerId, msg: SubmitMessage, signal?: AbortSignal): Promise<SubmitAnswer & { status: 'ok' }> {
    const options = { signal: anyWithTimeout([signal ?? this.controller.signal], SUBMIT_TIMEOUT_MS) }
    const stream = await this.libp2p.dialProtocol(peer, SUBMIT_PROTOCOL, options)
    const lp = lpStream(stream, { maxDataLength: MAX_SUBMIT_MESSAGE_BYTES })
    try {
      await lp.write(encodeSubmitMessage(msg), options)
      const answer = decodeSubmitAnswer((await lp.read(options)).subarray())
      await stream.close(options)
      if (answer.status !== 'ok') throw new SubmitRemoteError(answer.status, answer.message)
      return answer
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
