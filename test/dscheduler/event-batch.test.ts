import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { GossipBus, type EventOrigin } from '../../node/dscheduler/bus.ts'
import { signBatchProof, verifyEventProof } from '../../protocols/sync/index.ts'
import { batchDigests, decodeEventMessage, encodeEvent, encodeEventBatch, encodeRecipientTags, EVENTS_TOPIC, MAX_BATCH_EVENTS, recipientTag, recipientTags, type DflowEvent } from '../../protocols/events/index.ts'
import type { PrivateKey } from '@libp2p/interface'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'

const cidOf = (bytes: Uint8Array): string => CID.createV1(dagCbor.code, Digest.create(sha256.code, createHash('sha256').update(bytes).digest())).toString()

const claim = (from: string, i: number): DflowEvent => ({ type: 'step-claimed', from, ts: i, request: 'r1', step: 's', index: i, attempt: 0, incarnation: 1 })
const proof = { seqno: new Uint8Array(8).fill(1), signature: new Uint8Array(64).fill(2) }

describe('event batch codec', () => {
  it('round-trips a batch and a single event', () => {
    const events = [claim('a', 0), claim('a', 1), claim('a', 2)]
    const entries = events.map(e => encodeEvent(e))
    const decoded = decodeEventMessage(encodeEventBatch(entries, proof)).events
    expect(decoded.map(d => d.event)).toEqual(events)
    expect(decoded.map(d => d.bytes)).toEqual(entries)
    // every event carries the batch's proof, with the digests of all the batch's events (in order)
    expect(decoded.every(d => d.proof !== undefined && d.proof.signature.byteLength === 64 && Buffer.from(d.proof.batch).equals(Buffer.from(batchDigests(entries))))).toBe(true)
    expect(decoded[0].proof?.batch.byteLength).toBe(3 * 32)
    const single = decodeEventMessage(encodeEvent(events[0]))
    expect(single).toEqual({ events: [{ event: events[0], bytes: encodeEvent(events[0]) }] })
    // a batch of one naming its recipients
    const to = encodeRecipientTags([recipientTag('peerB'), recipientTag('peerC')]) as Uint8Array
    const named = decodeEventMessage(encodeEventBatch(entries.slice(0, 1), proof, to))
    expect(named.events.map(d => d.event)).toEqual(events.slice(0, 1))
    expect([...recipientTags(named.to as Uint8Array)]).toEqual([recipientTag('peerB'), recipientTag('peerC')])
    expect(encodeRecipientTags(Array.from({ length: 257 }, (_, i) => i))).toBeUndefined()
  })

  it('refuses a malformed batch, or one with a bad event, whole', () => {
    const good = encodeEvent(claim('a', 0))
    const sp = { s: proof.seqno, p: proof.signature }
    const bad = [
      { v: 1, type: 'batch', events: [], ...sp },
      { v: 1, type: 'batch', events: [good], ...sp, to: new Uint8Array(5) },
      { v: 1, type: 'batch', events: [good], ...sp, to: new Uint8Array(4 * 257) },
      { v: 1, type: 'batch', events: Array.from({ length: MAX_BATCH_EVENTS + 1 }, () => good), ...sp },
      { v: 2, type: 'batch', events: [good, good], ...sp },
      { v: 1, type: 'batch', events: [good, good], ...sp, extra: 1 },
      { v: 1, type: 'batch', events: [good, good], ...sp, s: new Uint8Array(7) },
      { v: 1, type: 'batch', events: [good, good], ...sp, p: new Uint8Array(0) },
      { v: 1, type: 'batch', events: [good, good], p: proof.signature },
      { v: 1, type: 'batch', events: [good, { e: good }], ...sp },
      { v: 1, type: 'batch', events: [good, new Uint8Array(0)], ...sp },
      { v: 1, type: 'batch', events: [good, dagCbor.encode({ v: 1, type: 'nope' })], ...sp },
      { v: 1, type: 'batch', events: 'no', ...sp }
    ]
    for (const b of bad) expect(() => decodeEventMessage(dagCbor.encode(b))).toThrow(expect.objectContaining({ name: 'EventValidationError' }))
    expect(() => encodeEventBatch([], proof)).toThrow(expect.objectContaining({ name: 'EventValidationError' }))
  })

  it('a batch proof proves each of its events alone, and nothing else', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const self = peerIdFromPrivateKey(key).toString()
    const entries = [claim(self, 0), claim(self, 1), claim(self, 2)].map(e => encodeEvent(e))
    const signed = await signBatchProof(key, batchDigests(entries))
    for (const e of entries) expect(await verifyEventProof(self, e, signed)).toBe(true)
    // not another peer's, not an event outside the batch, not a changed digest list or seqno
    expect(await verifyEventProof(peerIdFromPrivateKey(other).toString(), entries[0], signed)).toBe(false)
    expect(await verifyEventProof(self, encodeEvent(claim(self, 3)), signed)).toBe(false)
    const swapped = batchDigests([entries[0], entries[1], encodeEvent(claim(self, 3))])
    expect(await verifyEventProof(self, encodeEvent(claim(self, 3)), { ...signed, batch: swapped })).toBe(false)
    expect(await verifyEventProof(self, entries[0], { ...signed, seqno: new Uint8Array(8) })).toBe(false)
    // a digest list cut off mid-digest, or the bytes of a digest straddling two, prove nothing
    expect(await verifyEventProof(self, entries[0], { ...signed, batch: signed.batch!.subarray(0, 40) })).toBe(false)
    const straddle = new Uint8Array(64)
    straddle.set(batchDigests([entries[1]]), 16)
    expect(await verifyEventProof(self, entries[1], { ...signed, batch: straddle })).toBe(false)
    // the gossip form (no digests) of the same signature is another statement, and fails
    expect(await verifyEventProof(self, entries[0], { seqno: signed.seqno, signature: signed.signature })).toBe(false)
  })
})

describe('gossip bus: batches', () => {
  let a: DflowLibp2p
  let b: DflowLibp2p
  let keyA: PrivateKey
  let busA: GossipBus
  let busB: GossipBus
  const seen: Array<{ event: DflowEvent, origin?: EventOrigin }> = []

  beforeAll(async () => {
    keyA = await generateKeyPair('Ed25519')
    a = await createDflowLibp2p({ privateKey: keyA })
    b = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    await a.start()
    await b.start()
    busA = new GossipBus(a, defaultLogger().forComponent('test:bus-a'), { privateKey: keyA })
    busB = new GossipBus(b, defaultLogger().forComponent('test:bus-b'))
    busB.onEvent((event, origin) => { seen.push({ event, origin }) })
    await busA.start()
    await busB.start()
    await a.dial(b.getMultiaddrs()[0])
    const deadline = Date.now() + 20_000
    while (!a.services.pubsub.getSubscribers(EVENTS_TOPIC).some(p => p.equals(b.peerId)) || !b.services.pubsub.getSubscribers(EVENTS_TOPIC).some(p => p.equals(a.peerId))) {
      if (Date.now() > deadline) throw new Error('no subscription seen')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })

  afterAll(async () => {
    await busA?.stop()
    await busB?.stop()
    await a?.stop()
    await b?.stop()
  })

  const waitSeen = async (n: number): Promise<void> => {
    const deadline = Date.now() + 10_000
    while (seen.length < n && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  }

  it('sends the events of one tick as one message, in order, each with a proof that sync can relay', async () => {
    const self = a.peerId.toString()
    const events = [claim(self, 0), claim(self, 1), claim(self, 2)]
    const before = busA.counters().messages
    await Promise.all(events.map(async e => busA.publish(e)))
    expect(busA.counters().messages - before).toBe(1)
    await waitSeen(3)
    expect(seen.map(s => s.event)).toEqual(events)
    for (const s of seen) {
      expect(Buffer.from(s.origin?.bytes ?? []).equals(Buffer.from(encodeEvent(s.event)))).toBe(true)
      // each event's own proof verifies against its publisher on its own, and not against anyone else
      expect(await verifyEventProof(self, s.origin!.bytes, s.origin!.proof!)).toBe(true)
      expect(await verifyEventProof(b.peerId.toString(), s.origin!.bytes, s.origin!.proof!)).toBe(false)
    }
    // events of different ticks go in different messages
    await busA.publish(claim(self, 3))
    await busA.publish(claim(self, 4))
    expect(busA.counters().messages - before).toBe(3)
    await waitSeen(5)
    expect(seen.map(s => (s.event as { index: number }).index)).toEqual([0, 1, 2, 3, 4])
  })

  it('events with slack wait for later ones and leave with the first that has none, in order', async () => {
    seen.length = 0
    const self = a.peerId.toString()
    const done = (i: number): DflowEvent => ({ type: 'step-done', from: self, ts: i, request: 'r1', step: 's', index: i, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 0 })
    // a bus whose waiting never times out here: only an event without slack sends what waits
    const key = await generateKeyPair('Ed25519')
    const c = await createDflowLibp2p({ privateKey: key })
    await c.start()
    const busC = new GossipBus(c, defaultLogger().forComponent('test:bus-c'), { privateKey: key, maxSendDelayMs: 600_000 })
    const asked: number[] = []
    busC.slack = ev => { asked.push((ev as { index: number }).index); return ev.type === 'step-done' ? Infinity : 0 }
    try {
      await busC.start()
      await c.dial(b.getMultiaddrs()[0])
      const deadline = Date.now() + 20_000
      while (!c.services.pubsub.getSubscribers(EVENTS_TOPIC).some(p => p.equals(b.peerId))) {
        if (Date.now() > deadline) throw new Error('no subscription seen')
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const cSelf = c.peerId.toString()
      const mine = (e: DflowEvent): DflowEvent => ({ ...e, from: cSelf })
      // a waiting event's publish resolves (it is applied locally and will go out) though nothing was sent
      await busC.publish(mine(done(0)))
      await busC.publish(mine(done(1)))
      expect(busC.counters().messages).toBe(0)
      expect(busC.counters().waits).toBe(1)
      // slack is asked again at every check: done 0 was asked twice
      expect(asked.filter(i => i === 0).length).toBeGreaterThanOrEqual(2)
      await busC.publish(mine(claim(cSelf, 2)))
      // the claim takes both along: one message, publish order kept
      expect(busC.counters().messages).toBe(1)
      const until = Date.now() + 10_000
      while (seen.filter(s => s.event.from === cSelf).length < 3 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
      expect(seen.filter(s => s.event.from === cSelf).map(s => `${s.event.type}:${(s.event as { index: number }).index}`)).toEqual(['step-done:0', 'step-done:1', 'step-claimed:2'])
      // what still waits at stop() goes out then
      await busC.publish(mine(done(3)))
      expect(busC.counters().messages).toBe(1)
    } finally {
      await busC.stop()
      expect(busC.counters().messages).toBe(2)
      await c.stop()
    }
  })

  it('a waiting event goes out by itself once its slack (or the bus\'s cap) has passed', async () => {
    seen.length = 0
    const self = a.peerId.toString()
    busA.slack = ev => ev.type === 'step-done' ? 20 : 0
    try {
      const before = busA.counters().messages
      await busA.publish({ type: 'step-done', from: self, ts: 1, request: 'r1', step: 's', index: 7, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 0, startAt: 0, endAt: 0 })
      await waitSeen(1)
      expect(seen.map(s => (s.event as { index: number }).index)).toEqual([7])
      expect(busA.counters().messages - before).toBe(1)
    } finally {
      busA.slack = undefined
    }
  })

  it('an event too large to share a message goes alone, the rest still together', async () => {
    seen.length = 0
    const self = a.peerId.toString()
    // as large as one event may be, within 64 bytes: wrapped in a batch (proof, tags) it would pass MAX_EVENT_BYTES
    const bigEvent = (n: number): DflowEvent => {
      const inline = dagCbor.encode(new Uint8Array(n).fill(7))
      return { type: 'output-ready', from: self, ts: 1, request: 'r1', step: 'big', index: null, attempt: 0, incarnation: 1, output: 'o', value: { cid: cidOf(inline), size: inline.byteLength, holders: [self], inline } }
    }
    const overhead = encodeEvent(bigEvent(1000)).byteLength - 1000
    const big = bigEvent(1024 * 1024 - 64 - overhead)
    expect(encodeEvent(big).byteLength).toBeGreaterThan(1024 * 1024 - 80)
    expect(encodeEvent(big).byteLength).toBeLessThanOrEqual(1024 * 1024)
    const before = busA.counters().messages
    await Promise.all([busA.publish(claim(self, 20)), busA.publish(big), busA.publish(claim(self, 21)), busA.publish(claim(self, 22))])
    // [claim 20], [big] alone, [claims 21, 22]
    expect(busA.counters().messages - before).toBe(3)
    const deadline = Date.now() + 10_000
    while (seen.length < 4 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    expect(seen.map(s => s.event.type === 'output-ready' ? 'big' : (s.event as { index: number }).index)).toEqual([20, 'big', 21, 22])
    const got = seen[1]
    expect(await verifyEventProof(self, got.origin!.bytes, got.origin!.proof!)).toBe(true)
  })

  it('rejects a whole batch when one of its events names another publisher', async () => {
    seen.length = 0
    const self = a.peerId.toString()
    const entries = [claim(self, 10), claim(b.peerId.toString(), 11)].map(e => encodeEvent(e))
    const rejected = busB.validation.rejected
    await a.services.pubsub.publish(EVENTS_TOPIC, encodeEventBatch(entries, await signBatchProof(keyA, batchDigests(entries))))
    // a valid message after it: once it is seen, the batch was handled
    await busA.publish(claim(self, 12))
    await waitSeen(1)
    expect(seen.map(s => (s.event as { index: number }).index)).toEqual([12])
    expect(busB.validation.rejected).toBe(rejected + 1)
  })
})

describe('gossip bus: relays leave out the recipients a publisher names', () => {
  const nodes: DflowLibp2p[] = []
  const buses: GossipBus[] = []
  const seen: Array<Array<number | null>> = [[], [], []]

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const privateKey = await generateKeyPair('Ed25519')
      const node = await createDflowLibp2p({ privateKey })
      await node.start()
      const bus = new GossipBus(node, defaultLogger().forComponent(`test:bus-${i}`), { privateKey })
      bus.onEvent(ev => { seen[i].push((ev as { index: number | null }).index) })
      await bus.start()
      nodes.push(node)
      buses.push(bus)
    }
  })

  afterAll(async () => {
    for (const b of buses) await b.stop()
    for (const n of nodes) await n.stop()
  })

  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const deadline = Date.now() + 15_000
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
  const subscribed = (from: number, to: number): boolean => nodes[from].services.pubsub.getSubscribers(EVENTS_TOPIC).some(p => p.equals(nodes[to].peerId))

  it('a peer the publisher is not connected to still gets the message; peers it sent to get no relayed copy', async () => {
    const [a, b, c] = nodes
    const self = a.peerId.toString()
    // a line: a - b - c
    await a.dial(b.getMultiaddrs()[0])
    await b.dial(c.getMultiaddrs()[0])
    await until('subscriptions on the line', () => subscribed(0, 1) && subscribed(1, 2) && subscribed(2, 1))
    await buses[0].publish(claim(self, 1))
    // only b's relay can bring it to c: a named b alone
    await until('c to hear a through b', () => seen[2].includes(1))
    // a triangle: a now sends to b and c itself, and names both
    await a.dial(c.getMultiaddrs()[0])
    await until('subscriptions in the triangle', () => subscribed(0, 2) && subscribed(2, 0))
    const skipped = buses.map(x => x.counters().forwardsSkipped)
    await buses[0].publish(claim(self, 2))
    await until('b and c to hear it', () => seen[1].includes(2) && seen[2].includes(2))
    await new Promise(resolve => setTimeout(resolve, 200))
    // b did not relay to c, nor c to b
    expect(buses[1].counters().forwardsSkipped).toBeGreaterThan(skipped[1])
    expect(buses[2].counters().forwardsSkipped).toBeGreaterThan(skipped[2])
    expect(seen[1].filter(x => x === 2)).toHaveLength(1)
    expect(seen[2].filter(x => x === 2)).toHaveLength(1)
  })

  it('a receiver sends no IDONTWANT to the other recipients of a large message', async () => {
    // gossipsub sends one to every other mesh peer for each message of 512 bytes or more; after the test above
    // the three peers form a triangle, where the publisher reaches everyone itself
    const idontwants = nodes.map(n => {
      const pubsub = n.services.pubsub as unknown as { handleIdontwant: (...args: unknown[]) => void }
      const original = pubsub.handleIdontwant.bind(pubsub)
      const count = { n: 0 }
      pubsub.handleIdontwant = (...args) => { count.n++; original(...args) }
      return count
    })
    const self = nodes[0].peerId.toString()
    const large: DflowEvent = { ...claim(self, 3), also: Array.from({ length: 20 }, (_, i) => ({ step: `a-step-with-a-long-name-${i}`, index: i, attempt: 0 })) } as DflowEvent
    expect(encodeEvent(large).byteLength).toBeGreaterThan(600)
    await buses[0].publish(large)
    await until('b and c to hear it', () => seen[1].includes(3) && seen[2].includes(3))
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(idontwants.map(c => c.n)).toEqual([0, 0, 0])
  })
})
