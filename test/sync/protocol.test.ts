import { describe, expect, it } from 'vitest'
import { lpStream, streamPair } from '@libp2p/utils'
import { encodeEvent } from '../../protocols/events/index.ts'
import { decodeSyncMessage, encodeSyncMessage, eventId, SYNC_BATCH_BYTES, initiateSync, respondSync, SyncMessageError, SyncRemoteError, type SyncSource } from '../../protocols/sync/index.ts'
import { cancelled, claimed, done, fill, logsAlone, requestEvents, started } from './helpers.ts'
import type { RequestLogs } from '../../node/dscheduler/event-log.ts'

const opts = (ms = 5000): { signal: AbortSignal, readTimeoutMs: number } => ({ signal: AbortSignal.timeout(ms), readTimeoutMs: ms })

/** One exchange: `a` (peer aName) initiates, `b` (peer bName) responds. */
async function exchange (a: SyncSource, b: SyncSource, aName = 'peerA', bName = 'peerB'): Promise<[Awaited<ReturnType<typeof initiateSync>>, Awaited<ReturnType<typeof respondSync>>]> {
  const [out, inb] = await streamPair()
  return Promise.all([initiateSync(out, a, bName, opts()), respondSync(inb, b, aName, opts())])
}

const same = (x: RequestLogs, y: RequestLogs, r: string): boolean => {
  const dx = x.digest(r); const dy = y.digest(r)
  return dx !== undefined && dy !== undefined && dx.count === dy.count && Buffer.from(dx.hash).equals(Buffer.from(dy.hash))
}

describe('/dflow/sync/1.0.0 over an in-memory stream', () => {
  it('one exchange makes both sides hold the union, both ways, and carries terminal events', async () => {
    const A = logsAlone(); const B = logsAlone()
    const r1 = requestEvents('r1', 6)
    fill(A.logs, r1)
    fill(B.logs, [r1[0], r1[1], r1[4], claimed('r1', 'onlyB', 3, 'peerB')]) // B missed 4 of A's, has 1 A lacks
    fill(B.logs, requestEvents('r2', 2, false, 'peerB')) // unfinished at B, unknown to A
    fill(A.logs, requestEvents('r3', 1, true)) // done at A ...
    fill(B.logs, requestEvents('r3', 1)) // ... still unfinished at B: it must learn request-done
    fill(A.logs, requestEvents('r4', 0)) // unfinished at A ...
    fill(B.logs, [...requestEvents('r4', 0), cancelled('r4', 'peerB'), done('r4', 'peerB')]) // ... finished at B

    const [ra, rb] = await exchange(A.logs, B.logs)
    for (const r of ['r1', 'r2', 'r3', 'r4']) expect(same(A.logs, B.logs, r)).toBe(true)
    expect(A.logs.digest('r1')?.count).toBe(8)
    expect(A.logs.activeRequests()).toEqual(['r1', 'r2'])
    expect(B.logs.activeRequests()).toEqual(['r1', 'r2'])
    // what moved, counted on each side: A got onlyB, r2's 3, r4's 2; B got 4 of r1 and r3's done
    expect(ra).toEqual({ requests: 4, sent: 5, received: 6, rejected: 0 })
    expect(rb).toEqual({ requests: 4, sent: 6, received: 5, rejected: 0 })
    expect(A.ingested.every(i => i.from === 'peerB')).toBe(true)
    expect(B.ingested.map(i => i.event.type)).toContain('request-done')
    // r2 arrives in B's log order: request-started first
    expect(A.ingested.filter(i => i.event.request === 'r2')[0].event.type).toBe('request-started')

    // equal logs: the responder lists nothing and nothing moves
    const [again] = await exchange(A.logs, B.logs)
    expect(again).toEqual({ requests: 0, sent: 0, received: 0, rejected: 0 })
  })

  it('the initiator refuses events it did not ask for, of another request, heartbeats and garbage', async () => {
    const A = logsAlone()
    fill(A.logs, requestEvents('r1', 1))
    const wantedEv = claimed('r1', 'x', 0, 'evil')
    const relayed = claimed('r1', 'y', 0, 'peerZ') // asked for, but sent by evil in peerZ's name with no proof
    const hostile = (async (): Promise<void> => {
      const [out, inb] = await streamPair()
      const lp = lpStream(inb)
      const run = initiateSync(out, A.logs, 'evil', opts())
      decodeSyncMessage((await lp.read()).subarray())
      await lp.write(encodeSyncMessage({ type: 'ids', lists: [{ request: 'r1', ids: [eventId(encodeEvent(wantedEv)), eventId(encodeEvent(relayed))] }] }))
      const push = decodeSyncMessage((await lp.read()).subarray())
      expect(push.type === 'push' && push.want[0].ids.length).toBe(2)
      const heartbeat = encodeEvent({ type: 'heartbeat', from: 'evil', ts: 1, incarnation: 1, load: 0 })
      await lp.write(encodeSyncMessage({
        type: 'events',
        events: [encodeEvent(started('r9', 'evil')), encodeEvent(claimed('r1', 'unasked', 0, 'evil')), heartbeat, Uint8Array.of(1, 2, 3), encodeEvent(relayed), encodeEvent(wantedEv), encodeEvent(wantedEv)].map(bytes => ({ bytes }))
      }))
      expect(await run).toEqual({ requests: 1, sent: 2, received: 1, rejected: 6 })
    })()
    await hostile
    expect(A.ingested.map(i => i.event)).toEqual([wantedEv])
    expect(A.logs.log('r9')).toBeUndefined()
  })

  it('the responder answers malformed input with an error message and a typed error', async () => {
    const B = logsAlone()
    fill(B.logs, requestEvents('r1', 1))
    const [out, inb] = await streamPair()
    const served = respondSync(inb, B.logs, 'evil', opts())
    const lp = lpStream(out)
    await lp.write(Uint8Array.of(0xa1, 0x61, 0x74, 0x63, 0x78, 0x79, 0x7a)) // {t: 'xyz'}
    const answer = decodeSyncMessage((await lp.read()).subarray())
    expect(answer).toMatchObject({ type: 'error', message: expect.stringContaining('unknown message type') })
    await expect(served).rejects.toThrow(SyncMessageError)
  })

  it('the responder takes pushed events only for requests it listed', async () => {
    const B = logsAlone()
    fill(B.logs, requestEvents('r1', 1, true))
    const [out, inb] = await streamPair()
    const served = respondSync(inb, B.logs, 'evil', opts())
    const lp = lpStream(out)
    await lp.write(encodeSyncMessage({ type: 'digests', digests: [] }))
    expect(decodeSyncMessage((await lp.read()).subarray())).toEqual({ type: 'ids', lists: [] }) // r1 is done at B: not offered
    await lp.write(encodeSyncMessage({ type: 'push', events: [{ bytes: encodeEvent(started('r7', 'evil')) }], want: [{ request: 'r1', ids: B.logs.ids('r1') ?? [] }] }))
    expect(decodeSyncMessage((await lp.read()).subarray())).toEqual({ type: 'events', events: [] })
    expect(await served).toEqual({ requests: 0, sent: 0, received: 0, rejected: 1 })
    expect(B.logs.log('r7')).toBeUndefined()
  })

  it('an initiator reports the remote error; a silent peer times out; an abort stops the exchange', async () => {
    const A = logsAlone()
    fill(A.logs, requestEvents('r1', 1))
    let [out, inb] = await streamPair()
    let run = initiateSync(out, A.logs, 'peerB', opts())
    let lp = lpStream(inb)
    await lp.read()
    await lp.write(encodeSyncMessage({ type: 'error', message: 'go away' }))
    await expect(run).rejects.toThrow(SyncRemoteError)

    ;[out, inb] = await streamPair()
    const t0 = Date.now()
    await expect(initiateSync(out, A.logs, 'peerB', { signal: AbortSignal.timeout(10_000), readTimeoutMs: 200 })).rejects.toThrow(/abort|timeout/i)
    expect(Date.now() - t0).toBeLessThan(5000)

    ;[out, inb] = await streamPair()
    const ctl = new AbortController()
    run = initiateSync(out, A.logs, 'peerB', { signal: ctl.signal, readTimeoutMs: 10_000 })
    lp = lpStream(inb)
    await lp.read()
    ctl.abort(new Error('stopping'))
    await expect(run).rejects.toThrow()
  })

  it('bounds what one message carries: a large backlog moves over several exchanges', async () => {
    const A = logsAlone(); const B = logsAlone()
    // events of ~60 KiB: a 3 MiB batch holds 51 of them, so 120 need three exchanges
    const evs = [started('r1'), ...Array.from({ length: 120 }, (_, i) => ({ ...cancelled('r1'), reason: `${i}:${'x'.repeat(60 * 1024)}` }))]
    const size = encodeEvent(evs[1]).byteLength
    const perBatch = Math.floor(SYNC_BATCH_BYTES / size)
    fill(A.logs, evs)
    fill(B.logs, [evs[0]])
    const sent: number[] = []
    for (let i = 0; i < 3; i++) sent.push((await exchange(A.logs, B.logs))[0].sent)
    expect(sent).toEqual([perBatch, perBatch, 120 - 2 * perBatch])
    expect(same(A.logs, B.logs, 'r1')).toBe(true)
    // the pull direction is bounded the same way: a fresh peer asks for everything, gets one batch per exchange
    const C = logsAlone()
    fill(C.logs, [evs[0]])
    const [, rb] = await exchange(C.logs, A.logs, 'peerC', 'peerA')
    expect(rb.sent).toBe(perBatch)
  })
})
