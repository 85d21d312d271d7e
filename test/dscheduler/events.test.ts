import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { CID as MfCID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as dagCbor from '@ipld/dag-cbor'
import { defaultLogger } from '@libp2p/logger'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { GossipBus, type EventOrigin } from '../../node/dscheduler/bus.ts'
import { verifyEventProof, type EventProof } from '../../protocols/sync/index.ts'
import { decodeEvent, encodeEvent, EVENTS_TOPIC, type DflowEvent } from '../../protocols/events/index.ts'

const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const cidOf = (bytes: Uint8Array): string => MfCID.createV1(dagCbor.code, Digest.create(sha256.code, createHash('sha256').update(bytes).digest())).toString()

describe('event codec', () => {
  it('round-trips every event type', () => {
    const base = { from: 'peerA', ts: 1, request: 'r1' }
    // an inline value must hash to its CID and a list's length must be its own
    const inline = dagCbor.encode(['x', 'y'])
    const ref = { cid: cidOf(inline), size: inline.byteLength, holders: ['peerA'], inline, length: 2 }
    const events: DflowEvent[] = [
      { type: 'request-started', ...base, workflow: CID, inputs: { a: ref }, mode: 'dataflow', store: 'distributed', submitter: 'peerA' },
      { type: 'step-claimed', ...base, step: 's', index: null, attempt: 0, incarnation: 5, slots: 4 },
      { type: 'step-claimed', ...base, step: 'f', index: 0, attempt: 0, incarnation: 5, also: [{ step: 'f', index: 1, attempt: 0 }, { step: 'g', index: null, attempt: 2 }] },
      { type: 'steps-assigned', ...base, slots: 4, claims: [{ step: 'f', index: 0, attempt: 0, peer: 'peerB', incarnation: 7 }, { step: 'g', index: null, attempt: 1, peer: 'peerA', incarnation: 5 }] },
      { type: 'output-ready', ...base, step: 's', index: 2, attempt: 1, incarnation: 5, output: 'o', value: ref },
      { type: 'element-posted', ...base, step: 's', index: null, attempt: 0, incarnation: 5, output: 'o', element: 4, value: ref },
      { type: 'step-done', ...base, step: 's', index: null, attempt: 0, incarnation: 5, streams: { o: 3 }, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: 3 },
      { type: 'step-done', ...base, step: 's', index: 1, attempt: 0, incarnation: 5, streams: {}, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: 3, outputs: { o: ref } },
      { type: 'step-failed', ...base, step: 's', index: null, attempt: 2, incarnation: 5, error: 'boom' },
      { type: 'value-lost', ...base, cid: CID },
      { type: 'request-cancelled', ...base, reason: 'user' },
      { type: 'request-done', ...base, status: 'ok', outputs: { x: ref, y: null } },
      { type: 'heartbeat', from: 'peerA', ts: 1, incarnation: 1, load: 0 }
    ]
    for (const ev of events) expect(decodeEvent(encodeEvent(ev))).toEqual(ev)
  })

  it('encodes as dag-cbor does, a field set to undefined as if absent (event ids and start ids hash these bytes)', () => {
    const inline = dagCbor.encode(['x'])
    const ref = { cid: cidOf(inline), size: inline.byteLength, holders: ['peerA'], inline }
    const withUndefined = { type: 'step-done', from: 'peerA', ts: 1.5, request: 'r1', step: 's', index: null, attempt: 0, incarnation: 5, start: undefined, streams: {}, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: 3, outputs: { o: { ...ref, length: undefined } } } as unknown as DflowEvent
    const { start: _s, ...absent } = withUndefined as unknown as Record<string, unknown>
    const expected = dagCbor.encode({ v: 1, ...absent, outputs: { o: ref } })
    expect(encodeEvent(withUndefined)).toEqual(expected)
    expect(dagCbor.decode(encodeEvent(withUndefined))).not.toHaveProperty('start')
    // dag-cbor's rules hold: no NaN, no undefined in a list
    expect(() => encodeEvent({ ...withUndefined, ts: Number.NaN } as DflowEvent)).toThrow()
    expect(() => encodeEvent({ ...withUndefined, outputs: { o: { ...ref, holders: [undefined] } } } as unknown as DflowEvent)).toThrow()
  })

  it('rejects malformed events with EventValidationError', () => {
    const bad = [
      new Uint8Array([0xff, 0x00]),
      dagCbor.encode({ v: 2, type: 'heartbeat', from: 'a', ts: 1, incarnation: 1, load: 0 }),
      dagCbor.encode({ v: 1, type: 'nope', from: 'a', ts: 1 }),
      dagCbor.encode({ v: 1, type: 'step-claimed', from: 'a', ts: 1, request: 'r', step: 's', index: -1, attempt: 0, incarnation: 0 }),
      dagCbor.encode({ v: 1, type: 'output-ready', from: 'a', ts: 1, request: 'r', step: 's', index: null, output: 'o', value: { cid: 'not-a-cid', size: 1, holders: [] } }),
      dagCbor.encode({ v: 1, type: 'heartbeat', from: 'a', ts: 1, incarnation: 1, load: 0, extra: true }),
      // an assignment must name its peer and that peer's incarnation, and carry at least one claim
      dagCbor.encode({ v: 1, type: 'steps-assigned', from: 'a', ts: 1, request: 'r', claims: [{ step: 's', index: null, attempt: 0, incarnation: 1 }] }),
      dagCbor.encode({ v: 1, type: 'steps-assigned', from: 'a', ts: 1, request: 'r', claims: [] })
    ]
    for (const b of bad) expect(() => decodeEvent(b)).toThrow(expect.objectContaining({ name: 'EventValidationError' }))
  })
})

describe('gossip bus', () => {
  let a: DflowLibp2p
  let b: DflowLibp2p
  let busB: GossipBus
  const seen: DflowEvent[] = []
  const origins: Array<EventOrigin | undefined> = []

  beforeAll(async () => {
    a = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    b = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    await a.start()
    await b.start()
    busB = new GossipBus(b, defaultLogger().forComponent('test:bus'))
    busB.onEvent((ev, origin) => { seen.push(ev); origins.push(origin) })
    await busB.start()
    a.services.pubsub.subscribe(EVENTS_TOPIC)
    await a.dial(b.getMultiaddrs()[0])
    const deadline = Date.now() + 20_000
    while (!a.services.pubsub.getSubscribers(EVENTS_TOPIC).some(p => p.equals(b.peerId))) {
      if (Date.now() > deadline) throw new Error('no subscription seen')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })

  afterAll(async () => {
    await busB?.stop()
    await a?.stop()
    await b?.stop()
  })

  it('drops malformed and forged messages, delivers valid ones, and stays up', async () => {
    const self = a.peerId.toString()
    await a.services.pubsub.publish(EVENTS_TOPIC, new Uint8Array([1, 2, 3, 4]))
    await a.services.pubsub.publish(EVENTS_TOPIC, encodeEvent({ type: 'heartbeat', from: b.peerId.toString(), ts: 1, incarnation: 1, load: 0 }))
    await a.services.pubsub.publish(EVENTS_TOPIC, encodeEvent({ type: 'heartbeat', from: self, ts: 2, incarnation: 1, load: 0 }))
    const deadline = Date.now() + 10_000
    while (seen.length === 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    expect(seen).toEqual([{ type: 'heartbeat', from: self, ts: 2, incarnation: 1, load: 0 }])
    expect(busB.counters().dropped).toBe(2)
    // the handler also gets the bytes and the origin's gossip signature: a proof that sync can relay
    const origin = origins[0]
    expect(new Uint8Array(origin?.bytes ?? [])).toEqual(encodeEvent({ type: 'heartbeat', from: self, ts: 2, incarnation: 1, load: 0 }))
    expect(await verifyEventProof(self, origin?.bytes ?? new Uint8Array(), origin?.proof as EventProof)).toBe(true)
    expect(await verifyEventProof(b.peerId.toString(), origin?.bytes ?? new Uint8Array(), origin?.proof as EventProof)).toBe(false)
  })
})
