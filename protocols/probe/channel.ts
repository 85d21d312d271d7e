import * as dagCbor from '@ipld/dag-cbor'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { MAX_PROBE_MESSAGE_BYTES } from './constants.ts'
import type { ProbeAnswer } from './index.ts'
import type { Stream } from '@libp2p/interface'

/**
 * The prober's side of one long-lived probe stream: a message per probe, answers matched by `seq`. A stream per
 * probe cost a stream open, a protocol negotiation and a close each time, several times the bytes and writes
 * of the probe itself; at rest that was most of a peer's CPU.
 */
export class ProbeChannel {
  readonly lp: LengthPrefixedStream<Stream>
  private readonly pending = new Map<number, (answer: ProbeAnswer | undefined) => void>()
  closed = false

  constructor (readonly stream: Stream, private readonly check: (answer: unknown) => string | undefined, private readonly onClose: (err?: Error) => void) {
    this.lp = lpStream(stream, { maxDataLength: MAX_PROBE_MESSAGE_BYTES })
    void this.readLoop()
  }

  private async readLoop (): Promise<void> {
    let failure: Error | undefined
    try {
      while (true) {
        const answer = dagCbor.decode<unknown>((await this.lp.read()).subarray())
        const bad = this.check(answer)
        if (bad !== undefined) throw new Error(`bad probe answer: ${bad}`)
        const seq = (answer as ProbeAnswer).seq
        this.pending.get(seq)?.(answer as ProbeAnswer)
        this.pending.delete(seq)
      }
    } catch (err) {
      failure = err as Error
    } finally {
      this.close(failure)
    }
  }

  /** Sends one message and waits for the answer with its seq; undefined on timeout or when the stream ends. */
  async ask (seq: number, message: unknown, timeoutMs: number): Promise<ProbeAnswer | undefined> {
    if (this.closed) return undefined
    let timer: NodeJS.Timeout | undefined
    const started = performance.now()
    const answered = new Promise<ProbeAnswer | undefined>(resolve => {
      this.pending.set(seq, resolve)
      let graced = false
      const expire = (): void => {
        // a timer that fires late means this process was busy, and the answer may be sitting unread in the
        // socket: grant the lateness once, then let pending I/O be read (setImmediate runs after the poll
        // phase) before giving up. Our own slowness must not make a live peer suspect.
        const late = performance.now() - started - timeoutMs
        if (!graced && late > 20) { graced = true; timer = setTimeout(expire, late); return }
        setImmediate(() => { if (this.pending.delete(seq)) resolve(undefined) })
      }
      timer = setTimeout(expire, timeoutMs)
    })
    try {
      // a send that cannot drain (a cut-off peer) must not outlive the probe either
      void this.lp.write(dagCbor.encode(message)).catch((err: Error) => { this.close(err) })
      return await answered
    } finally {
      clearTimeout(timer)
    }
  }

  /** Sends one message that wants no answer (a quiet ping); a send that fails closes the channel. */
  send (message: unknown): void {
    if (this.closed) return
    void this.lp.write(dagCbor.encode(message)).catch((err: Error) => { this.close(err) })
  }

  close (err?: Error): void {
    if (this.closed) return
    this.closed = true
    for (const resolve of this.pending.values()) resolve(undefined)
    this.pending.clear()
    if (err !== undefined) this.stream.abort(err)
    else void this.stream.close().catch(() => {})
    this.onClose(err)
  }
}
