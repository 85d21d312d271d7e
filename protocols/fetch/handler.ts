import { setMaxListeners } from 'node:events'
import { lpStream } from '@libp2p/utils'
import { decodeFrame, encodeRequestFrame, encodeStatusFrame, expectFrame, parseFetchRequest, RemoteStatusError, type Frame } from './codec.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT_MS, DEFAULT_WINDOW } from './constants.ts'
import { parseChunkedRoot } from '../../node/dstore/blocks.ts'
import { receiveBlocks, sendBlocks, type ReceiveOptions, type ReceiveResult, type SendPlan } from './transfer.ts'
import type { BlockReader, BlockWriter, FetchProtocolInit } from './index.ts'
import type { Logger, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { CID } from 'multiformats/cid'
import { anyWithTimeout } from '../util/timeout-signal.ts'

export function fetchInit (init: FetchProtocolInit = {}): Required<FetchProtocolInit> {
  return {
    maxMessageBytes: init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    timeoutMs: init.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    window: init.window ?? DEFAULT_WINDOW
  }
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

/**
 * Serves one fetch stream. Never throws: protocol errors are answered with an error status, transport
 * errors abort the stream. `signal` is the service's lifetime signal. A request with `more: true` keeps the
 * stream open for the next request once the value is sent (the status says `more`), so a fetcher that asks
 * one holder again skips the stream setup (a multistream-select round trip and peer-store writes on both
 * sides); between requests, credit frames left over from the last transfer are skipped, and a stream idle
 * for SESSION_IDLE_MS is closed.
 */
export async function handleFetch (stream: Stream, reader: BlockReader, init: FetchProtocolInit, signal: AbortSignal, log: Logger, onServed?: (cid: CID, bytes: number) => void): Promise<void> {
  const cfg = fetchInit(init)
  const lp = lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * 2 })
  let served = 0
  try {
    while (true) {
      const options = { signal: anyWithTimeout([signal], cfg.timeoutMs) }
      // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
      setMaxListeners(Infinity, options.signal)
      let request
      try {
        request = parseFetchRequest(expectFrame(await nextRequest(lp, served, options, signal), 'request').body)
      } catch (err) {
        const name = (err as Error)?.name
        if (served > 0 && (name === 'UnexpectedEOFError' || name === 'IdleError' || stream.status !== 'open' || stream.readStatus === 'closed' || signal.aborted)) {
          // the fetcher closed its session (or left it idle): done
          await stream.close(options).catch(() => { stream.abort(new Error('closing an idle fetch stream failed')) })
          return
        }
        log('bad fetch request - %s', errorMessage(err))
        await lp.write(encodeStatusFrame({ status: 'error', message: errorMessage(err) }), options)
        await stream.close(options)
        return
      }
      const plan = await planOf(reader, request.cid, options)
      if (plan == null) {
        await lp.write(encodeStatusFrame({ status: 'not_found' }), options)
        await stream.close(options)
        return
      }
      const shared = reader.isLocalToken?.(request.host) === true
      const bytes = await sendBlocks(lp, reader, request.cid, plan, request.window, options, shared,
        encodeStatusFrame(request.more ? { status: 'ok', message: 'more' } : { status: 'ok' }))
      onServed?.(request.cid, bytes)
      served++
      if (!request.more) {
        await stream.close(options)
        return
      }
    }
  } catch (err) {
    log('fetch stream failed - %s', errorMessage(err))
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

class IdleError extends Error {
  constructor () { super('fetch stream idle'); this.name = 'IdleError' }
}

/** Streams a holder keeps open for further requests are closed after this long without one. */
export const SESSION_IDLE_MS = 30_000

/** The next request frame; after the first, credit frames left over from the previous transfer are skipped. */
async function nextRequest (lp: LengthPrefixedStream<Stream>, served: number, first: { signal: AbortSignal }, signal: AbortSignal): Promise<Frame> {
  if (served === 0) return decodeFrame(await lp.read(first))
  const idle = new AbortController()
  const timer = setTimeout(() => { idle.abort(new IdleError()) }, SESSION_IDLE_MS)
  timer.unref?.()
  try {
    const options = { signal: AbortSignal.any([signal, idle.signal]) }
    while (true) {
      let frame: Frame
      try { frame = decodeFrame(await lp.read(options)) } catch (err) {
        throw idle.signal.aborted ? new IdleError() : err
      }
      if (frame.type !== 'credit') return frame
    }
  } finally { clearTimeout(timer) }
}

/** The value's root and chunks: from the reader's cache when it has one, else by parsing the root. */
export async function planOf (reader: BlockReader, cid: CID, options: { signal?: AbortSignal }): Promise<SendPlan | undefined> {
  if (reader.plan != null) return reader.plan(cid, options)
  const rootBytes = await reader.getBlock(cid, options)
  if (rootBytes == null) return undefined
  return { rootBytes, chunks: parseChunkedRoot(cid, rootBytes)?.chunks ?? [] }
}

/**
 * A fetch stream with its framing, reusable for one request after another while the holder answers `more`.
 * One length-prefixed reader per stream for its whole life: it may have buffered the next frames already.
 */
export interface FetchSession { stream: Stream, lp: LengthPrefixedStream<Stream> }

export function openSession (stream: Stream, init: FetchProtocolInit = {}): FetchSession {
  const cfg = fetchInit(init)
  return { stream, lp: lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * (cfg.window + 2) }) }
}

/**
 * Client side: asks for `cid` on an open stream and writes the verified blocks to `writer`.
 * Throws RemoteStatusError (not_found / error), BlockVerificationError, or the transport's error;
 * the stream is closed or aborted either way.
 */
export async function fetchBlocks (stream: Stream, cid: CID, writer: BlockWriter, init: FetchProtocolInit, signal: AbortSignal, opts: ReceiveOptions & { host?: Uint8Array } = {}): Promise<ReceiveResult> {
  const session = openSession(stream, init)
  const result = await fetchOn(session, cid, writer, init, signal, opts)
  await stream.close({ signal }).catch(err => { stream.abort(err instanceof Error ? err : new Error(String(err))) })
  return result
}

/**
 * One request on a session. `more`: ask the holder to keep the stream open afterwards; the result's `more`
 * says whether it will (then the session can carry the next request). The stream is aborted on any failure.
 */
export async function fetchOn (session: FetchSession, cid: CID, writer: BlockWriter, init: FetchProtocolInit, signal: AbortSignal, opts: ReceiveOptions & { host?: Uint8Array, more?: boolean } = {}): Promise<ReceiveResult & { more: boolean }> {
  const cfg = fetchInit(init)
  const options = { signal: anyWithTimeout([signal], cfg.timeoutMs) }
  // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
  setMaxListeners(Infinity, options.signal)
  const { stream, lp } = session
  try {
    const request: Record<string, unknown> = { cid, window: cfg.window }
    if (opts.host != null && writer.adoptShared != null) request.host = opts.host
    if (opts.more === true) request.more = true
    await lp.write(encodeRequestFrame(request), options)
    const status = expectFrame(decodeFrame(await lp.read(options)), 'status').body
    if (status.status !== 'ok') throw new RemoteStatusError(status.status, status.message)
    const result = await receiveBlocks(lp, cid, writer, cfg.window, options, { shared: request.host != null, maxValueBytes: opts.maxValueBytes })
    return { ...result, more: opts.more === true && status.message === 'more' }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
