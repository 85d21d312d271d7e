import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import '../../node/util/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { RequestSync } from '../../node/dscheduler/request-sync.ts'
import type { AntiEntropy } from '../../node/dscheduler/anti-entropy.ts'
import { eventId, proofFromGossip, signBatchProof, verifyEventProof, type EventProof, type SyncProtocol } from '../../protocols/sync/index.ts'
import type { PrivateKey } from '@libp2p/interface'
import { waitFor } from '../dstore/helpers.ts'
import { claimed, done, fill, requestEvents, started } from './helpers.ts'
import { batchDigests, decodeEvent, decodeEventMessage, encodeEvent, encodeEventBatch, EVENTS_TOPIC, type RequestEvent } from '../../protocols/events/index.ts'
import type { RequestLogs } from '../../node/dscheduler/event-log.ts'

interface SyncPeer { libp2p: DflowLibp2p, logs: RequestLogs, sync: SyncProtocol, ae: AntiEntropy, rs: RequestSync, id: string, key: PrivateKey }

/** A real libp2p node (TCP + noise + yamux on loopback) with RequestSync; no scheduler: what a sync brings is simply added. */
async function startSyncPeer (): Promise<SyncPeer> {
  const privateKey = await generateKeyPair('Ed25519')
  const libp2p = await createDflowLibp2p({ privateKey })
  await libp2p.start()
  const id = libp2p.peerId.toString()
  const rs: RequestSync = new RequestSync({
    self: id,
    libp2p,
    privateKey, // own events carry a proof, so peers can relay them
    livePeers: () => libp2p.getPeers().map(String),
    logger: defaultLogger(),
    ingest: (entry, event) => rs.logs.add(event, entry.bytes, entry.proof)
  }, { intervalMs: 200 })
  await rs.start()
  return { libp2p, logs: rs.logs, sync: rs.protocol, ae: rs.antiEntropy, rs, id, key: privateKey }
}

const digestOf = (p: SyncPeer, r: string): string => {
  const d = p.logs.digest(r)
  return d === undefined ? 'none' : `${d.count}:${Buffer.from(d.hash).toString('hex')}`
}

describe('anti-entropy between real peers', () => {
  let peers: SyncPeer[] = []
  beforeAll(async () => { peers = await Promise.all([0, 1, 2].map(startSyncPeer)) })
  afterAll(async () => {
    for (const p of peers) { await p.rs.stop(); await p.libp2p.stop() }
  })

  it('a peer that missed events catches up; a late joiner learns the whole request; request-done ends all exchanges', async () => {
    const [a, b, c] = peers
    await a.libp2p.dial(b.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
    const evs = requestEvents('r1', 10, false, a.id)
    // both heard the start; b "missed" 6 of the 10 claims on gossip, and has one claim a missed
    fill(a.logs, evs)
    fill(b.logs, [evs[0], evs[2], evs[5], evs[7], evs[9]])
    const onlyB = claimed('r1', 'fromB', 1, b.id)
    b.logs.add(onlyB)
    a.ae.wake(); b.ae.wake()
    await waitFor(() => digestOf(a, 'r1') === digestOf(b, 'r1'), 'a and b converge', 10_000)
    expect(a.logs.digest('r1')?.count).toBe(12)

    // c starts knowing nothing (idle: it opens no exchange); a and b sync with it when it connects
    expect(c.ae.scheduled).toBe(false)
    await c.libp2p.dial(a.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
    await waitFor(() => digestOf(c, 'r1') === digestOf(a, 'r1'), 'c catches up', 10_000)
    expect(c.logs.log('r1')?.ids()[0]).toBe(a.logs.log('r1')?.ids()[0]) // request-started first

    // a finishes the request; b and c (still unfinished) learn request-done from it, then everyone is idle
    a.logs.add(done('r1', a.id))
    await waitFor(() => peers.every(p => p.logs.log('r1')?.done === true), 'request-done everywhere', 10_000)
    await waitFor(() => peers.every(p => !p.ae.scheduled), 'no timer armed anywhere', 10_000)
    // exchanges started (an answer still in flight may finish later, so the served count is not compared)
    const before = peers.map(p => p.sync.counters.exchanges)
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(peers.map(p => p.sync.counters.exchanges)).toEqual(before)
    expect(peers.every(p => digestOf(p, 'r1') === digestOf(a, 'r1'))).toBe(true)
    expect(peers.reduce((n, p) => n + p.sync.counters.rejected, 0)).toBe(0)
    expect(a.rs.metrics()).toMatchObject({ logs: { requests: 1, events: 13 } })
  })

  it('a done request that a peer follows (it lacks results) is exchanged about until it has them; follow(0) ends it', async () => {
    const [a, b] = peers
    const evs = [...requestEvents('r-follow', 6, false, a.id), done('r-follow', a.id)]
    fill(a.logs, evs)
    // b heard the start and the request-done but lost the claims in between: the request is done, nobody syncs it
    fill(b.logs, [evs[0], evs[evs.length - 1]])
    expect(b.logs.activeRequests()).toEqual([])
    // (the start armed b's timer a moment; its round finds nothing unfinished and arms none)
    await waitFor(() => !b.ae.scheduled, 'b idle', 10_000)
    expect(digestOf(b, 'r-follow')).not.toBe(digestOf(a, 'r-follow'))
    b.logs.follow('r-follow', 60_000)
    expect(b.ae.scheduled).toBe(true)
    await waitFor(() => digestOf(b, 'r-follow') === digestOf(a, 'r-follow'), 'b fetches what it lacked', 10_000)
    b.logs.follow('r-follow', 0)
    await waitFor(() => !b.ae.scheduled, 'b idle again', 10_000)
  })

  it('a relayed event needs its origin\'s gossip signature: with it, it is taken; forged, it is refused', async () => {
    const [a, b, c] = peers
    const pubsubA = a.libp2p.services.pubsub
    const pubsubB = b.libp2p.services.pubsub
    pubsubA.subscribe(EVENTS_TOPIC)
    pubsubB.subscribe(EVENTS_TOPIC)
    await waitFor(() => pubsubA.getSubscribers(EVENTS_TOPIC).some(p => p.toString() === b.id), 'b subscribed, seen by a', 10_000)
    const real = started('r2', a.id)
    const forged = claimed('r2', 'forged', 5, a.id)
    const got = new Promise<void>(resolve => {
      pubsubB.addEventListener('message', evt => {
        const msg = evt.detail
        if (msg.type !== 'signed' || msg.topic !== EVENTS_TOPIC) return
        // what the bus will do: keep the gossip signature as the event's proof (a later test's batch is not for here)
        let ev: RequestEvent
        try { ev = decodeEvent(msg.data) as RequestEvent } catch { return }
        b.logs.add(ev, msg.data, proofFromGossip(msg))
        resolve()
      })
    })
    // a publishes on gossip but keeps nothing in its log: b is the only holder, c must get it from b
    await pubsubA.publish(EVENTS_TOPIC, encodeEvent(real))
    await got
    const entry = b.logs.events('r2', b.logs.ids('r2') ?? [])[0]
    expect(await verifyEventProof(a.id, entry.bytes, entry.proof as EventProof)).toBe(true)
    expect(await verifyEventProof(b.id, entry.bytes, entry.proof as EventProof)).toBe(false)
    b.logs.add(forged) // b claims a said this: no proof can show it
    const rejected = c.sync.counters.rejected
    await c.libp2p.dial(b.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
    await waitFor(() => c.logs.log('r2')?.size === 1 && c.sync.counters.rejected > rejected, 'c took the signed event and refused the forged one', 10_000)
    expect(c.logs.log('r2')?.ids()).toEqual([eventId(encodeEvent(real))])
  })

  it('events that came in a batch are relayed one by one with the batch\'s proof; one not in the batch is refused', async () => {
    const [a, b, c] = peers
    const batch = [started('r3', a.id), claimed('r3', 's', 0, a.id)].map(e => encodeEvent(e))
    const outside = claimed('r3', 'outside', 1, a.id)
    const got = new Promise<void>(resolve => {
      b.libp2p.services.pubsub.addEventListener('message', evt => {
        const msg = evt.detail
        if (msg.type !== 'signed' || msg.topic !== EVENTS_TOPIC) return
        const { events } = decodeEventMessage(msg.data)
        if (events.length !== 2) return
        // what the bus does: every event keeps the batch's proof (with the digests of the whole batch)
        for (const e of events) b.logs.add(e.event as RequestEvent, e.bytes, e.proof)
        // b claims a said this too, under the batch's proof: the digests show it was not in the batch
        b.logs.add(outside, encodeEvent(outside), events[0].proof)
        resolve()
      })
    })
    await a.libp2p.services.pubsub.publish(EVENTS_TOPIC, encodeEventBatch(batch, await signBatchProof(a.key, batchDigests(batch))))
    await got
    const rejected = c.sync.counters.rejected
    await waitFor(() => c.logs.log('r3')?.size === 2 && c.sync.counters.rejected > rejected, 'c took the batch\'s events and refused the other', 10_000)
    expect(c.logs.log('r3')?.ids()).toEqual(batch.map(eventId))
  })
})
