import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as dagCbor from '@ipld/dag-cbor'
import { lpStream } from '@libp2p/utils'
import { resolveConfig } from '../../node/config.ts'
import { createPeer, type Peer } from '../../node/peer.ts'
import { STATUS_PROTOCOL, StatusAnswerError, StatusProtocol, checkStatusInfo, type PeerStatusInfo } from '../../protocols/status/index.ts'
import type { Stream } from '@libp2p/interface'

const INFO: PeerStatusInfo = { slots: 4, busy: 1, storeBytes: 1234, storeCapacity: 2 ** 31, connections: 1, startedAt: 1_700_000_000_000, rss: 100_000_000 }

describe('/dflow/status/1.0.0 between two in-process peers', () => {
  let a: Peer
  let b: Peer
  let asker: StatusProtocol
  let server: StatusProtocol

  beforeAll(async () => {
    a = await createPeer(resolveConfig({}))
    await a.start()
    b = await createPeer(resolveConfig({ bootstrap: a.libp2p.getMultiaddrs().map(String) }))
    await b.start()
    asker = new StatusProtocol(a.libp2p, () => INFO, a.logger.forComponent('dflow:status'))
    server = new StatusProtocol(b.libp2p, () => INFO, b.logger.forComponent('dflow:status'))
    await asker.start()
    await server.start()
    await a.libp2p.dial(b.libp2p.getMultiaddrs()[0])
  })

  afterAll(async () => {
    await asker?.stop()
    await server?.stop()
    await b?.stop()
    await a?.stop()
  })

  it('answers the peer\'s own figures', async () => {
    expect(await asker.ask(b.peerId)).toEqual(INFO)
  })

  it('rejects a malformed answer with StatusAnswerError, and an abort with the abort', async () => {
    await server.stop()
    try {
      // a hostile peer: answers a status whose fields are wrong
      await b.libp2p.handle(STATUS_PROTOCOL, async (stream: Stream) => {
        const lp = lpStream(stream)
        await lp.read()
        await lp.write(dagCbor.encode({ ...INFO, busy: -1, extra: 'x' }))
        await stream.close()
      })
      const err = await asker.ask(b.peerId).then(() => new Error('no error'), (e: Error) => e)
      expect(err).toBeInstanceOf(StatusAnswerError)
      expect(err.message).toContain('busy must be a non-negative integer')
      await b.libp2p.unhandle(STATUS_PROTOCOL)
      // a peer that never answers: the caller's signal ends the wait
      await b.libp2p.handle(STATUS_PROTOCOL, async () => {})
      const controller = new AbortController()
      const t0 = Date.now()
      setTimeout(() => { controller.abort(new Error('dashboard closed')) }, 200)
      await expect(asker.ask(b.peerId, controller.signal)).rejects.toThrow()
      expect(Date.now() - t0).toBeLessThan(2900)
      await b.libp2p.unhandle(STATUS_PROTOCOL)
    } finally {
      await server.start()
    }
  })

  it('checks every field of an answer', () => {
    expect(checkStatusInfo({ ...INFO, more: 1 })).toEqual(INFO)
    expect(() => checkStatusInfo([])).toThrow(StatusAnswerError)
    expect(() => checkStatusInfo({ ...INFO, rss: 1.5 })).toThrow(/rss/)
    expect(() => checkStatusInfo({ ...INFO, slots: '4' })).toThrow(/slots/)
  })
})
