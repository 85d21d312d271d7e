import { describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { encodeEvent } from '../../protocols/events/index.ts'
import { RequestEventLog, RequestLogs } from '../../node/dscheduler/event-log.ts'
import { claimed, done, requestEvents, started } from './helpers.ts'

const idOf = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 32)

function xorOf (ids: string[]): Uint8Array {
  const out = new Uint8Array(16)
  for (const id of ids) Buffer.from(id, 'hex').forEach((b, i) => { out[i] ^= b })
  return out
}

describe('RequestEventLog', () => {
  it('keeps each event once, by the sha-256 of its canonical bytes, and accounts its bytes', () => {
    const log = new RequestEventLog('r1')
    const evs = requestEvents('r1', 3)
    let bytes = 0
    for (const ev of evs) {
      const b = encodeEvent(ev)
      bytes += b.byteLength
      expect(log.add(b, ev)).toBe(true)
    }
    // the same event again, re-encoded from a decoded copy: same bytes, same id, not new
    expect(log.add(encodeEvent({ ...evs[1] }), evs[1])).toBe(false)
    expect(log.size).toBe(4)
    expect(log.bytes).toBe(bytes)
    expect(log.footprint()).toBeGreaterThan(bytes)
    const ids = evs.map(ev => idOf(encodeEvent(ev)))
    expect(log.ids()).toEqual(ids)
    expect(log.has(ids[2])).toBe(true)
    expect(log.has('00'.repeat(16))).toBe(false)
    // asked order, unknown ids skipped
    // held as plain copies (encodeEvent may hand out a Buffer view of a larger pool)
    expect(log.get([ids[3], 'ff'.repeat(16), ids[0]])).toEqual([{ bytes: new Uint8Array(encodeEvent(evs[3])) }, { bytes: new Uint8Array(encodeEvent(evs[0])) }])
    expect(log.peers).toEqual(new Set(['peerA']))
  })

  it('refuses an event of another request', () => {
    const log = new RequestEventLog('r1')
    const ev = started('r2')
    expect(() => log.add(encodeEvent(ev), ev)).toThrow(/r2/)
  })

  it('digest: count and XOR of ids, updated per event, independent of arrival order', () => {
    const evs = requestEvents('r1', 20)
    const a = new RequestEventLog('r1')
    const b = new RequestEventLog('r1')
    for (const ev of evs) a.add(encodeEvent(ev), ev)
    for (const ev of [...evs].reverse()) b.add(encodeEvent(ev), ev)
    expect(a.digest()).toEqual(b.digest())
    expect(a.digest()).toEqual({ count: 21, hash: xorOf(evs.map(ev => idOf(encodeEvent(ev)))) })

    const c = new RequestEventLog('r1')
    for (const ev of evs.slice(0, 20)) c.add(encodeEvent(ev), ev)
    expect(c.digest().count).toBe(20)
    expect(Buffer.from(c.digest().hash).equals(Buffer.from(a.digest().hash))).toBe(false)
    // a duplicate leaves the digest alone (XORing an id twice would cancel it out)
    const before = c.digest()
    c.add(encodeEvent(evs[0]), evs[0])
    expect(c.digest()).toEqual(before)
    // the digest handed out is a copy
    c.digest().hash.fill(0)
    expect(c.digest()).toEqual(before)
  })

  it('is done once a request-done is held', () => {
    const log = new RequestEventLog('r1')
    const ev = done('r1')
    expect(log.done).toBe(false)
    log.add(encodeEvent(ev), ev)
    expect(log.done).toBe(true)
  })
})

describe('RequestLogs', () => {
  it('lists unfinished requests, their participants, and says when one becomes unfinished', () => {
    const woke: string[] = []
    const logs = new RequestLogs({ ingest: () => true, onActive: r => { woke.push(r) } })
    expect(logs.hasActive()).toBe(false)
    for (const ev of requestEvents('r1', 2)) logs.add(ev)
    for (const ev of requestEvents('r2', 1, true, 'peerB')) logs.add(ev)
    logs.add(claimed('r1', 'x', 1, 'peerC'))
    expect(woke).toEqual(['r1', 'r2'])
    expect(logs.activeRequests()).toEqual(['r1'])
    expect(logs.hasActive()).toBe(true)
    expect(logs.participants()).toEqual(new Set(['peerA', 'peerC']))
    logs.add(done('r1'))
    expect(logs.activeRequests()).toEqual([])
    expect(logs.hasActive()).toBe(false)
    expect(logs.usage()).toMatchObject({ requests: 2, events: 8 })
  })

  it('follows a done request for a while when asked: it is exchanged about again until the time is up or follow(0)', async () => {
    const woke: string[] = []
    const logs = new RequestLogs({ ingest: () => true, onActive: r => { woke.push(r) } })
    for (const ev of requestEvents('r1', 2, true)) logs.add(ev)
    expect(logs.activeRequests()).toEqual([])
    woke.length = 0
    logs.follow('r1', 60_000)
    expect(woke).toEqual(['r1'])
    expect(logs.activeRequests()).toEqual(['r1'])
    expect(logs.hasActive()).toBe(true)
    expect(logs.participants()).toEqual(new Set(['peerA']))
    logs.follow('r1', 0)
    expect(logs.hasActive()).toBe(false)
    logs.follow('r1', 30)
    expect(logs.hasActive()).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 60))
    expect(logs.hasActive()).toBe(false)
    // an unknown request is no error and wakes nothing
    logs.follow('nope', 60_000)
    expect(woke).toEqual(['r1', 'r1'])
  })

  it('hands a synced event to the scheduler only when it is not held', () => {
    const seen: string[] = []
    const logs: RequestLogs = new RequestLogs({ ingest: (entry, ev) => { seen.push(ev.type); return logs.add(ev, entry.bytes, entry.proof) } })
    const ev = started('r1')
    expect(logs.ingest({ bytes: encodeEvent(ev) }, ev, 'peerB')).toBe(true)
    const proof = { seqno: new Uint8Array(8), signature: Uint8Array.of(1, 2, 3) }
    expect(logs.ingest({ bytes: encodeEvent(ev), proof }, ev, 'peerB')).toBe(false)
    // the proof that came with a second copy is kept, so the event can be relayed
    expect(logs.events('r1', logs.ids('r1') ?? [])).toEqual([{ bytes: new Uint8Array(encodeEvent(ev)), proof }])
    expect(seen).toEqual(['request-started'])
    expect(logs.digest('r1')?.count).toBe(1)
    expect(logs.digest('nope')).toBeUndefined()
    expect(logs.ids('nope')).toBeUndefined()
    expect(logs.events('nope', ['00'.repeat(16)])).toEqual([])
  })

  it('bounds one request\'s bytes: past the budget events are kept by id only, and drops logs after the retention', () => {
    const logs = new RequestLogs({ ingest: () => true, maxRequestBytes: 300, retentionMs: 1000 })
    const evs = requestEvents('r1', 10)
    for (const ev of evs) expect(logs.add(ev)).toBe(true)
    for (const ev of evs) expect(logs.add(ev)).toBe(false) // still de-duplicated
    const log = logs.log('r1')
    expect(log?.size).toBe(11)
    expect(log?.bytes).toBeLessThanOrEqual(300)
    expect(log?.stripped).toBeGreaterThan(0)
    // the digest covers every event; only the ones with bytes can be handed out
    const full = new RequestEventLog('r1')
    for (const ev of evs) full.add(encodeEvent(ev), ev)
    expect(log?.digest()).toEqual(full.digest())
    expect(logs.events('r1', log?.ids() ?? []).length).toBe(11 - (log?.stripped ?? 0))
    logs.markDone('r1')
    expect(logs.activeRequests()).toEqual([])
    const at = logs.log('r1')?.changedAt ?? 0
    logs.add(started('r2'))
    const at2 = logs.log('r2')?.changedAt ?? 0
    expect(logs.sweep(at + 999)).toBe(0)
    expect(logs.sweep(at + 1000)).toBe(1) // r1 is done here (markDone): one retention
    expect(logs.sweep(at2 + 3999)).toBe(0) // r2 never finished: four
    expect(logs.sweep(at2 + 4000)).toBe(1)
    expect(logs.size).toBe(0)
    logs.add(started('r3'))
    logs.release('r3')
    expect(logs.size).toBe(0)
  })
})
