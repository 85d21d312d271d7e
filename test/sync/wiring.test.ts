import { afterEach, describe, expect, it, vi } from 'vitest'
import { defaultLogger } from '@libp2p/logger'
import { TypedEventEmitter } from '@libp2p/interface'
import { LocalBus } from '../../node/dscheduler/bus.ts'
import { LoggedBus } from '../../node/dscheduler/logged-bus.ts'
import { RequestLogs } from '../../node/dscheduler/event-log.ts'
import { RequestSync } from '../../node/dscheduler/request-sync.ts'
import { encodeEvent, type DflowEvent } from '../../protocols/events/index.ts'
import { claimed, done, requestEvents, started } from './helpers.ts'

afterEach(() => { vi.useRealTimers() })

describe('LoggedBus', () => {
  it('passes each request event on once, whichever way it came; heartbeats pass and are not logged', async () => {
    const inner = new LocalBus()
    const logs = new RequestLogs({ ingest: () => true })
    const bus = new LoggedBus(inner, logs)
    const seen: DflowEvent[] = []
    bus.onEvent(ev => { seen.push(ev) })
    const s = started('r1')
    await bus.publish(s)
    await bus.publish(s) // gossip can deliver twice
    await bus.publish({ type: 'heartbeat', from: 'peerA', ts: 1, incarnation: 1, load: 0 })
    await new Promise(resolve => setImmediate(resolve))
    expect(bus.ingest(s)).toBe(false) // a sync brings what gossip brought
    const c = claimed('r1', 'x')
    expect(bus.ingest(c, { bytes: encodeEvent(c) })).toBe(true)
    await bus.publish(c) // ... and gossip brings it later
    await new Promise(resolve => setImmediate(resolve))
    expect(seen.map(e => e.type)).toEqual(['request-started', 'heartbeat', 'step-claimed'])
    expect(logs.digest('r1')?.count).toBe(2)
    expect(bus.counters()).toMatchObject({ synced: 1, duplicates: 3 })
  })
})

describe('RequestSync', () => {
  it('sweeps old logs with a timer that runs only while logs are held', async () => {
    vi.useFakeTimers()
    const net = Object.assign(new TypedEventEmitter<any>(), { peerId: undefined as any, handle: async () => {}, unhandle: async () => {}, dialProtocol: async () => { throw new Error('no network') } })
    const rs = new RequestSync({ self: 'me', libp2p: net as any, livePeers: () => [], logger: defaultLogger(), ingest: () => true }, { retentionMs: 1000, intervalMs: 0 })
    await rs.start()
    expect(vi.getTimerCount()).toBe(0)
    for (const ev of requestEvents('r1', 2, true)) rs.logs.add(ev)
    rs.logs.add(done('r2')) // a log that is done from its first event
    expect(vi.getTimerCount()).toBe(1)
    await vi.advanceTimersByTimeAsync(2100)
    expect(rs.logs.size).toBe(0)
    expect(vi.getTimerCount()).toBe(0)
    await rs.stop()
  })
})
