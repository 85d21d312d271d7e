import { setMaxListeners } from 'node:events'
import { lpStream } from '@libp2p/utils'
import { decodeFrame, encodeRequestFrame, encodeStatusFrame, expectFrame, RemoteStatusError } from '../fetch/codec.ts'
import { fetchInit } from '../fetch/handler.ts'
import { receiveBlocks, sendBlocks, type SendPlan } from '../fetch/transfer.ts'
import { parsePushHeader, pushHeaderBody } from './codec.ts'
import type { PushProtocolInit, PushReceiver } from './index.ts'
import type { ValueMeta } from '../../node/dstore/types.ts'
import type { BlockReader } from '../fetch/index.ts'
import type { Logger, PeerId, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { anyWithTimeout } from '../util/timeout-signal.ts'

function errorMessage (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/** Receiver side of one push stream. Never throws; answers errors with an error status. */
export async function handlePush (stream: Stream, from: PeerId, receiver: PushReceiver, init: PushProtocolInit, signal: AbortSignal, log: Logger): Promise<void> {
  const cfg = fetchInit(init)
  const options = { signal: anyWithTimeout([signal], cfg.timeoutMs) }
  // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
  setMaxListeners(Infinity, options.signal)
  const lp = lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * (cfg.window + 2) })
  try {
    let header
    try {
      header = parsePushHeader(expectFrame(decodeFrame(await lp.read(options)), 'request').body)
    } catch (err) {
      log('bad push header from %p - %s', from, errorMessage(err))
      await lp.write(encodeStatusFrame({ status: 'error', message: errorMessage(err) }), options)
      await stream.close(options)
      return
    }
    const decision = await receiver.decide(header.cid, header.meta, from, header)
    const shared = decision === 'accept' && receiver.adoptShared != null && receiver.isLocalToken?.(header.host) === true
    // "accept" with the message "shared" tells the pusher it may send shared frames
    await lp.write(encodeStatusFrame(shared ? { status: decision, message: 'shared' } : { status: decision }), options)
    if (decision !== 'accept') {
      await stream.close(options)
      return
    }
    let result
    try {
      result = await receiveBlocks(lp, header.cid, receiver, Math.min(header.window, cfg.window), options, { shared, maxValueBytes: receiver.maxValueBytes, assemble: false })
    } catch (err) {
      log('push of %s from %p failed - %s', header.cid, from, errorMessage(err))
      await lp.write(encodeStatusFrame({ status: 'error', message: errorMessage(err) }), options).catch(() => {})
      await stream.close(options).catch(() => {})
      return
    }
    await lp.write(encodeStatusFrame({ status: 'ok' }), options)
    await stream.close(options)
    await receiver.landed(header.cid, header.meta, from, result)
  } catch (err) {
    log('push stream from %p failed - %s', from, errorMessage(err))
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

export type PushOutcome = 'ok' | 'have' | 'reject'

/** Sender side: header, wait for accept, blocks under the receiver's credit, then the final status. */
/**
 * `host`: the same-host token made for the receiver (when this peer has a shared directory); a receiver
 * that recognises it takes the blocks held in files from the shared directory instead of the stream.
 */
export async function pushBlocks (stream: Stream, cid: CID, meta: ValueMeta, reader: BlockReader, plan: SendPlan, init: PushProtocolInit, signal: AbortSignal, extra: { host?: Uint8Array, holders?: string[], provide?: boolean } = {}): Promise<PushOutcome> {
  const host = extra.host
  const cfg = fetchInit(init)
  const options = { signal: anyWithTimeout([signal], cfg.timeoutMs) }
  // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
  setMaxListeners(Infinity, options.signal)
  const lp = lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * 2 })
  try {
    await lp.write(encodeRequestFrame(pushHeaderBody({ cid, meta, window: cfg.window, host, holders: extra.holders, provide: extra.provide })), options)
    const answer = expectFrame(decodeFrame(await lp.read(options)), 'status').body
    if (answer.status === 'have' || answer.status === 'reject') {
      await stream.close(options)
      return answer.status
    }
    if (answer.status !== 'accept') throw new RemoteStatusError(answer.status, answer.message)
    await sendBlocks(lp, reader, cid, plan, cfg.window, options, host != null && answer.message === 'shared')
    const done = expectFrame(decodeFrame(await lp.read(options)), 'status').body
    if (done.status !== 'ok') throw new RemoteStatusError(done.status, done.message)
    await stream.close(options)
    return 'ok'
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
