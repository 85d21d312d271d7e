import { setMaxListeners } from 'node:events'
import { lpStream } from '@libp2p/utils'
import { decodeFrame, encodeRequestFrame, encodeStatusFrame, expectFrame, parseFetchRequest, RemoteStatusError } from './codec.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT_MS, DEFAULT_WINDOW } from './constants.ts'
import { parseChunkedRoot } from '../../node/dstore/blocks.ts'
import { receiveBlocks, sendBlocks, type ReceiveOptions, type ReceiveResult, type SendPlan } from './transfer.ts'
import type { BlockReader, BlockWriter, FetchProtocolInit } from './index.ts'
import type { Logger, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

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
 * errors abort the stream. `signal` is the service's lifetime signal.
 */
export async function handleFetch (stream: Stream, reader: BlockReader, init: FetchProtocolInit, signal: AbortSignal, log: Logger, onServed?: (cid: CID, bytes: number) => void): Promise<void> {
  const cfg = fetchInit(init)
  const options = { signal: AbortSignal.any([signal, AbortSignal.timeout(cfg.timeoutMs)]) }
  // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
  setMaxListeners(Infinity, options.signal)
  const lp = lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * 2 })
  try {
    let request
    try {
      request = parseFetchRequest(expectFrame(decodeFrame(await lp.read(options)), 'request').body)
    } catch (err) {
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
    await lp.write(encodeStatusFrame({ status: 'ok' }), options)
    const shared = reader.isLocalToken?.(request.host) === true
    const bytes = await sendBlocks(lp, reader, request.cid, plan, request.window, options, shared)
    onServed?.(request.cid, bytes)
    await stream.close(options)
  } catch (err) {
    log('fetch stream failed - %s', errorMessage(err))
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

/** The value's root and chunks: from the reader's cache when it has one, else by parsing the root. */
export async function planOf (reader: BlockReader, cid: CID, options: { signal?: AbortSignal }): Promise<SendPlan | undefined> {
  if (reader.plan != null) return reader.plan(cid, options)
  const rootBytes = await reader.getBlock(cid, options)
  if (rootBytes == null) return undefined
  return { rootBytes, chunks: parseChunkedRoot(cid, rootBytes)?.chunks ?? [] }
}

/**
 * Client side: asks for `cid` on an open stream and writes the verified blocks to `writer`.
 * Throws RemoteStatusError (not_found / error), BlockVerificationError, or the transport's error;
 * the stream is closed or aborted either way.
 */
export async function fetchBlocks (stream: Stream, cid: CID, writer: BlockWriter, init: FetchProtocolInit, signal: AbortSignal, opts: ReceiveOptions & { host?: Uint8Array } = {}): Promise<ReceiveResult> {
  const cfg = fetchInit(init)
  const options = { signal: AbortSignal.any([signal, AbortSignal.timeout(cfg.timeoutMs)]) }
  // every read, write and block write of the transfer listens on it (many at once in a pipelined receive)
  setMaxListeners(Infinity, options.signal)
  const lp = lpStream(stream, { maxDataLength: cfg.maxMessageBytes, maxBufferSize: cfg.maxMessageBytes * (cfg.window + 2) })
  try {
    const request: Record<string, unknown> = { cid, window: cfg.window }
    if (opts.host != null && writer.adoptShared != null) request.host = opts.host
    await lp.write(encodeRequestFrame(request), options)
    const status = expectFrame(decodeFrame(await lp.read(options)), 'status').body
    if (status.status !== 'ok') throw new RemoteStatusError(status.status, status.message)
    const result = await receiveBlocks(lp, cid, writer, cfg.window, options, { shared: request.host != null, maxValueBytes: opts.maxValueBytes })
    await stream.close(options)
    return result
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
