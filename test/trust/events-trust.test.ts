import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { claimOf, signCancel, signSubmit } from '../../node/auth/signing.ts'
import { parseAuthorizedSubmitters } from '../../node/auth/submitters.ts'
import { authorizeCancel, authorizeRequest } from '../../node/dscheduler/authorize.ts'
import { GossipBus } from '../../node/dscheduler/bus.ts'
import { identityId } from '../../node/keys.ts'
import { createDflowLibp2p, type DflowLibp2p } from '../../node/network/libp2p.ts'
import { decodeEvent, encodeEvent, EVENTS_TOPIC, type DflowEvent, type RequestStarted, type ValueRef } from '../../protocols/events/index.ts'
import type { PrivateKey } from '@libp2p/interface'

const cidOf = (bytes: Uint8Array): string => CID.createV1(dagCbor.code, Digest.create(sha256.code, createHash('sha256').update(bytes).digest())).toString()
const inlineRef = (value: unknown): ValueRef => {
  const inline = dagCbor.encode(value)
  return { cid: cidOf(inline), size: inline.byteLength, holders: ['p'], inline, ...(Array.isArray(value) ? { length: value.length } : {}) }
}
const base = { from: 'peerA', ts: 1, request: 'r1' }
const fence = { attempt: 0, incarnation: 1 }
const output = (value: ValueRef): DflowEvent => ({ type: 'output-ready', ...base, ...fence, step: 's', index: null, output: 'o', value })

async function started (key: PrivateKey | undefined, from: string, inputs: Record<string, ValueRef> = { n: inlineRef(3) }, request = 'req-1'): Promise<RequestStarted> {
  const ev: RequestStarted = { type: 'request-started', from, ts: Date.now(), request, workflow: cidOf(dagCbor.encode('wf')), inputs, mode: 'dataflow', store: 'distributed', submitter: from }
  if (key !== undefined) ev.auth = await signSubmit(key, claimOf(ev))
  return ev
}

describe('event codec: values and bounds', () => {
  it('accepts an inline value that hashes to its CID', () => {
    const ev = output(inlineRef([1, 2, 3]))
    expect(decodeEvent(encodeEvent(ev))).toEqual(ev)
  })

  it('rejects an inline value with a wrong CID, size or length', () => {
    const good = inlineRef([1, 2, 3])
    const other = inlineRef([1, 2, 4])
    const bad: Array<[ValueRef, RegExp]> = [
      [{ ...good, cid: other.cid }, /do not hash to/],
      [{ ...good, size: good.size + 1 }, /claims size/],
      [{ ...good, length: 4 }, /claims a list of 4/],
      [{ ...good, cid: CID.createV1(0x55, CID.parse(good.cid).multihash).toString() }, /not a dag-cbor/]
    ]
    for (const [ref, message] of bad) {
      expect(() => decodeEvent(encodeEvent(output(ref)))).toThrow(expect.objectContaining({ name: 'EventValidationError', message: expect.stringMatching(message) }))
    }
  })

  it('bounds the numbers a peer loops over', () => {
    const huge = 1e15
    const bad: DflowEvent[] = [
      output({ cid: inlineRef(1).cid, size: 10, holders: [], length: huge }),
      { type: 'element-posted', ...base, ...fence, step: 's', index: null, output: 'o', element: huge, value: { cid: inlineRef(1).cid, size: 1, holders: [] } },
      { type: 'step-claimed', ...base, step: 's', index: huge, attempt: 0, incarnation: 1 },
      { type: 'step-done', ...base, ...fence, step: 's', index: null, streams: { o: huge }, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: 3 },
      { type: 'request-started', ...base, workflow: inlineRef(1).cid, inputs: {}, mode: 'dataflow', store: 'distributed', submitter: 'peerA', deadlineMs: huge }
    ]
    for (const ev of bad) expect(() => decodeEvent(encodeEvent(ev))).toThrow(expect.objectContaining({ name: 'EventValidationError' }))
  })
})

describe('who may start and cancel a request', () => {
  let client: PrivateKey
  let stranger: PrivateKey
  const network = new Set(['peerA', 'peerB'])
  const policy = (authorized: string[]) => ({ authorized: new Set(authorized), isNetworkPeer: (id: string) => network.has(id) })

  beforeAll(async () => {
    client = await generateKeyPair('Ed25519')
    stranger = await generateKeyPair('Ed25519')
  })

  it('parses the authorized submitters file and names a bad line', () => {
    const id = identityId(client)
    expect([...parseAuthorizedSubmitters(`# clients\n${id}  # alice\n\n`)]).toEqual([id])
    expect(() => parseAuthorizedSubmitters('# ok\nnot-an-id\n', 'auth.txt')).toThrow(/auth.txt:2/)
  })

  it('runs a request signed by an authorized identity, refuses others and tampered ones', async () => {
    const ev = await started(client, 'peerA')
    expect(() => { authorizeRequest(ev, policy([identityId(client)])) }).not.toThrow()
    expect(() => { authorizeRequest(ev, policy([])) }).toThrow(expect.objectContaining({ name: 'NotAuthorizedError', kind: 'unauthorized', message: expect.stringContaining('not authorized') }))
    const tampered = { ...ev, inputs: { n: inlineRef(4) } }
    expect(() => { authorizeRequest(tampered, policy([identityId(client)])) }).toThrow(expect.objectContaining({ kind: 'forged' }))
    expect(() => { authorizeRequest({ ...ev, mode: 'control' }, policy([identityId(client)])) }).toThrow(expect.objectContaining({ kind: 'forged' }))
    // unsigned: only a peer of the network may start a request on its own
    const fromPeer = await started(undefined, 'peerB')
    expect(() => { authorizeRequest(fromPeer, policy([])) }).not.toThrow()
    const outsider = await started(undefined, 'peerZ')
    expect(() => { authorizeRequest(outsider, policy([])) }).toThrow(expect.objectContaining({ name: 'NotAuthorizedError' }))
  })

  it('takes a cancel only from the submitter or an authorized identity', async () => {
    const ev = await started(client, 'peerA')
    const cancel = (from: string) => ({ type: 'request-cancelled' as const, from, ts: Date.now(), request: ev.request, reason: 'x' })
    const bySubmitter = await signCancel(client, ev.request)
    const byStranger = await signCancel(stranger, ev.request)
    const forOther = await signCancel(client, 'other')
    expect(() => { authorizeCancel({ ...cancel('peerB'), auth: bySubmitter }, ev, policy([])) }).not.toThrow()
    expect(() => { authorizeCancel({ ...cancel('peerB'), auth: byStranger }, ev, policy([])) }).toThrow(/neither its submitter/)
    expect(() => { authorizeCancel({ ...cancel('peerB'), auth: byStranger }, ev, policy([identityId(stranger)])) }).not.toThrow()
    // a signature for another request does not carry over
    expect(() => { authorizeCancel({ ...cancel('peerB'), auth: forOther }, ev, policy([])) }).toThrow(expect.objectContaining({ kind: 'forged' }))
    // unsigned cancels of a signed request are forgeries, whoever sends them
    expect(() => { authorizeCancel(cancel('peerA'), ev, policy([])) }).toThrow(/unsigned/)
    const own = await started(undefined, 'peerA')
    expect(() => { authorizeCancel(cancel('peerA'), own, policy([])) }).not.toThrow()
    expect(() => { authorizeCancel(cancel('peerB'), own, policy([])) }).toThrow(/unsigned/)
  })
})

describe('gossip topic validator', () => {
  let a: DflowLibp2p
  let b: DflowLibp2p
  let busB: GossipBus
  let client: PrivateKey
  const seen: DflowEvent[] = []

  beforeAll(async () => {
    client = await generateKeyPair('Ed25519')
    a = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    b = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
    await a.start()
    await b.start()
    busB = new GossipBus(b, defaultLogger().forComponent('test:bus'), { policy: { authorized: new Set([identityId(client)]), isNetworkPeer: id => id === a.peerId.toString() } })
    busB.onEvent(ev => { if (ev.type !== 'heartbeat') seen.push(ev) })
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

  it('rejects forged values and cancels before delivery, and scores their sender down', async () => {
    const from = a.peerId.toString()
    const publish = async (ev: DflowEvent): Promise<void> => { await a.services.pubsub.publish(EVENTS_TOPIC, encodeEvent(ev)) }
    const start = await started(client, from)
    await publish(start)
    const good = inlineRef([1, 2])
    await publish({ type: 'output-ready', from, ts: 2, request: start.request, ...fence, step: 's', index: null, output: 'o', value: { ...good, cid: inlineRef([9]).cid } })
    await publish({ type: 'request-cancelled', from, ts: 3, request: start.request, reason: 'forged, unsigned' })
    await publish({ type: 'request-cancelled', from, ts: 4, request: start.request, reason: 'forged, wrong identity', auth: await signCancel(await generateKeyPair('Ed25519'), start.request) })
    await publish({ type: 'request-cancelled', from, ts: 5, request: start.request, reason: 'by its submitter', auth: await signCancel(client, start.request) })
    const deadline = Date.now() + 10_000
    while (seen.length < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    // gossip keeps a publisher's order: anything forged would have arrived before the last cancel
    expect(seen.map(e => e.type === 'request-cancelled' ? e.reason : e.type)).toEqual(['request-started', 'by its submitter'])
    // the wrong CID and the unsigned cancel are forgeries; an identity this peer does not authorize may be
    // authorized elsewhere, so its cancel is dropped without penalty
    expect(busB.validation).toMatchObject({ rejected: 2, ignored: 1 })
    let score = 0
    while (score >= 0 && Date.now() < deadline) {
      // the GossipSub interface does not expose getScore; the implementation does
      score = (b.services.pubsub as unknown as { getScore: (id: string) => number }).getScore(from)
      if (score >= 0) await new Promise(resolve => setTimeout(resolve, 100))
    }
    expect(score).toBeLessThan(0)
  })

  it('forgets who started a request once told its state is gone: a later cancel is dropped, without penalty', async () => {
    const from = a.peerId.toString()
    const publish = async (ev: DflowEvent): Promise<void> => { await a.services.pubsub.publish(EVENTS_TOPIC, encodeEvent(ev)) }
    const start = await started(client, from, undefined, 'req-forget')
    const known = busB.knownStarts()
    const before = seen.length
    await publish(start)
    const deadline = Date.now() + 10_000
    while (seen.length === before && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    expect(seen.slice(before).map(e => e.type)).toEqual(['request-started'])
    expect(busB.knownStarts()).toBe(known + 1)
    busB.forget(start.request)
    expect(busB.knownStarts()).toBe(known)
    const { ignored, rejected } = busB.validation
    await publish({ type: 'request-cancelled', from, ts: 6, request: start.request, reason: 'by its submitter, too late', auth: await signCancel(client, start.request) })
    while (busB.validation.ignored === ignored && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    expect(busB.validation).toMatchObject({ ignored: ignored + 1, rejected })
    expect(seen.slice(before).map(e => e.type)).toEqual(['request-started'])
  })
})
