import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fileURLToPath } from 'node:url'
import { resolveConfig } from '../../node/config.ts'
import { createDflowPeer, type DflowPeer } from '../../node/dflow-peer.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { waitFor } from '../dstore/helpers.ts'
import type { DflowEvent } from '../../protocols/events/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`../dscheduler/fixtures/${name}`, import.meta.url))

/**
 * Three full dflow peers in one process (libp2p over loopback TCP, DStore, worker pools, schedulers). Peer 2
 * is deaf to gossip: it drops every request event another peer publishes (heartbeats pass, so it is not a
 * dead peer, only one that lost messages). All it learns of other peers' work comes over /dflow/sync/1.0.0.
 */
describe('a peer that hears no request event on gossip still follows requests to the end', () => {
  const peers: DflowPeer[] = []
  let dropped = 0

  beforeAll(async () => {
    const flags = { syncIntervalMs: 300, heartbeatMs: 500, failureTimeoutMs: 3000, slots: 2 }
    const first = await createDflowPeer(resolveConfig(flags))
    await first.peer.start()
    peers.push(first)
    for (let i = 1; i < 3; i++) {
      const p = await createDflowPeer(resolveConfig({ ...flags, bootstrap: first.peer.libp2p.getMultiaddrs().map(String) }))
      await p.peer.start()
      peers.push(p)
    }
    const deaf = peers[2]
    const self = deaf.peer.peerId.toString()
    // fault injection: the gossip bus of peer 2 loses every request event published by another peer
    const bus = deaf.services.bus as unknown as { deliver: (ev: DflowEvent, origin?: unknown) => void }
    const deliver = bus.deliver.bind(bus)
    bus.deliver = (ev, origin) => {
      if (ev.type !== 'heartbeat' && ev.from !== self) { dropped++; return }
      deliver(ev, origin)
    }
    await waitFor(() => peers.every(p => p.services.membership.live().length === 3), 'every peer sees 3 live peers', 30_000)
  }, 60_000)

  afterAll(async () => {
    await Promise.allSettled(peers.map(async p => p.peer.stop()))
  })

  it('runs a pipeline to the same result on every peer, the deaf one through sync; then the network goes idle', async () => {
    const s0 = peers[0].services
    const workflow = await s0.loader.register(await loadWorkflow(fixture('pipeline.yaml')))
    const id = await s0.scheduler.submit({ workflow, inputs: { n: 4 } })
    for (const p of peers) await p.services.scheduler.waitFinished(id, AbortSignal.timeout(45_000))
    for (const p of peers) {
      const view = await p.services.scheduler.view(id)
      expect(view?.status).toBe('ok')
      expect(view?.outputs).toEqual({ total: 240, ys: [0, 20, 40, 60] })
    }
    const deaf = peers[2].services
    expect(dropped).toBeGreaterThan(0)
    // (without sync the deaf peer still finishes: it heard the hand-over and ran every instance itself; what
    // only sync gives it is the others' events, the finisher's request-done among them)
    const self = peers[2].peer.peerId.toString()
    await waitFor(() => peers[2].services.scheduler.eventsOf(id).some(e => e.type === 'request-done' && e.from !== self), 'the deaf peer has the finisher\'s request-done', 15_000)
    expect(deaf.sync.protocol.counters.received).toBeGreaterThan(0)
    // every event the deaf peer applied from others came once, through the log
    expect((deaf.scheduler.eventsOf(id)).length).toBe(deaf.sync.logs.log(id)?.size)
    // logs converge, request-done included, and then nobody exchanges any more
    const digest = (p: DflowPeer): string => {
      const d = p.services.sync.logs.digest(id)
      return `${d?.count}:${Buffer.from(d?.hash ?? []).toString('hex')}`
    }
    await waitFor(() => peers.every(p => digest(p) === digest(peers[0]) && p.services.sync.logs.log(id)?.done === true), 'logs equal everywhere', 15_000)
    await waitFor(() => peers.every(p => !p.services.sync.antiEntropy.scheduled), 'no anti-entropy timer armed', 10_000)
    const exchanges = peers.map(p => p.services.sync.protocol.counters.exchanges)
    await new Promise(resolve => setTimeout(resolve, 1500))
    expect(peers.map(p => p.services.sync.protocol.counters.exchanges)).toEqual(exchanges)
  })
})
