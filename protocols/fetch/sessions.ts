import { fetchOn, openSession, type FetchSession } from './handler.ts'
import type { BlockWriter, FetchProtocolInit } from './index.ts'
import type { ReceiveOptions, ReceiveResult } from './transfer.ts'
import type { PeerId, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

interface Idle { session: FetchSession, timer: ReturnType<typeof setTimeout> }

/**
 * Fetch streams kept open per holder: a fetch from a holder asked before takes an idle stream instead of
 * opening one (a multistream-select round trip plus peer-store writes on both sides, ~1 ms on a loaded
 * host, the largest part of a small same-host get). A stream goes back only when the transfer completed
 * and the holder answered `more`; an idle one is closed after `idleMs`. A kept stream the holder closed
 * meanwhile fails before any block moved, and the fetch is retried once on a fresh stream.
 */
export class FetchSessions {
  private readonly idle = new Map<string, Idle[]>()
  private readonly dial: (peer: PeerId, signal: AbortSignal) => Promise<Stream>
  private readonly init: () => FetchProtocolInit
  private readonly maxIdle: number
  private readonly idleMs: number
  /** fetches that took a kept stream */
  reused = 0

  constructor (dial: (peer: PeerId, signal: AbortSignal) => Promise<Stream>, init: () => FetchProtocolInit, opts: { maxIdle?: number, idleMs?: number } = {}) {
    this.dial = dial
    this.init = init
    this.maxIdle = opts.maxIdle ?? 4
    this.idleMs = opts.idleMs ?? 10_000
  }

  /** `onStream` is called once a stream (kept or new) is ready to carry the request. */
  async fetch (peer: PeerId, cid: CID, writer: BlockWriter, signal: AbortSignal, opts: ReceiveOptions & { host?: Uint8Array } = {}, onStream?: (reused: boolean) => void): Promise<ReceiveResult> {
    const key = peer.toString()
    const kept = this.take(key)
    if (kept != null) {
      onStream?.(true)
      try {
        const result = await fetchOn(kept, cid, writer, this.init(), signal, { ...opts, more: true })
        this.reused++
        this.release(key, kept, result.more)
        return result
      } catch (err) {
        // an answer (not_found, a wrong block) stands; a broken kept stream does not
        const name = (err as Error)?.name
        if (signal.aborted || name === 'RemoteStatusError' || name === 'BlockVerificationError') throw err
      }
    }
    const session = openSession(await this.dial(peer, signal), this.init())
    onStream?.(false)
    const result = await fetchOn(session, cid, writer, this.init(), signal, { ...opts, more: true })
    this.release(key, session, result.more)
    return result
  }

  /** Closes every kept stream. */
  close (): void {
    for (const list of this.idle.values()) {
      for (const { session, timer } of list) { clearTimeout(timer); shut(session.stream) }
    }
    this.idle.clear()
  }

  private take (key: string): FetchSession | undefined {
    const list = this.idle.get(key)
    while (list != null && list.length > 0) {
      const { session, timer } = list.pop()!
      clearTimeout(timer)
      if (list.length === 0) this.idle.delete(key)
      const s = session.stream
      if (s.status === 'open' && s.readStatus === 'readable' && s.writeStatus === 'writable') return session
      shut(s)
    }
    return undefined
  }

  private release (key: string, session: FetchSession, more: boolean): void {
    const list = this.idle.get(key) ?? []
    if (!more || list.length >= this.maxIdle || session.stream.status !== 'open') { shut(session.stream); return }
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const at = list.indexOf(entry)
        if (at >= 0) list.splice(at, 1)
        if (list.length === 0 && this.idle.get(key) === list) this.idle.delete(key)
        shut(session.stream)
      }, this.idleMs)
    }
    entry.timer.unref?.()
    list.push(entry)
    this.idle.set(key, list)
  }
}

function shut (stream: Stream): void {
  if (stream.status !== 'open') return
  stream.close({ signal: AbortSignal.timeout(5_000) }).catch(err => { stream.abort(err instanceof Error ? err : new Error(String(err))) })
}
