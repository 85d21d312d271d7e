import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../node/config.ts'
import { createPeer, type Peer, type PeerService } from '../../node/peer.ts'
import { EVENTS_TOPIC } from '../../protocols/events/constants.ts'
import type { PeersResponse } from '../../node/api/peers.ts'

const N = 4

async function until (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

describe('peers in one process', () => {
  const peers: Peer[] = []
  const events: string[] = []
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-peers-'))
    const service = (peer: Peer): PeerService => ({
      start: async () => { events.push(`start ${peer.peerId.toString().slice(-4)}`) },
      stop: async () => { events.push(`stop ${peer.peerId.toString().slice(-4)}`) },
      routes: () => [{ method: 'GET', path: '/v1/echo/:x', handler: async req => ({ x: req.params.x }) }]
    })
    const first = await createPeer(resolveConfig({ dataDir: join(dir, 'p0') }), { services: [service] })
    await first.start()
    peers.push(first)
    for (let i = 1; i < N; i++) {
      const p = await createPeer(resolveConfig({ bootstrap: first.libp2p.getMultiaddrs().map(String) }))
      await p.start()
      peers.push(p)
    }
  })

  afterAll(async () => {
    await Promise.allSettled(peers.map(async p => p.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  it('every peer finds every other through the DHT and sees it subscribed', async () => {
    await until('full mesh', async () => {
      for (const p of peers) {
        const res = await fetch(`${p.api.url}/v1/peers`, { signal: AbortSignal.timeout(3000) })
        const { peers: list } = await res.json() as PeersResponse
        const others = peers.filter(o => o !== p).map(o => o.peerId.toString())
        const ok = others.every(id => list.some(e => e.peerId === id && e.inRoutingTable && e.subscribed && e.connected))
        if (!ok) return false
      }
      return true
    })
  })

  it('a gossip message reaches every other peer', async () => {
    const received = peers.slice(1).map(p => new Promise<string>((resolve) => {
      p.libp2p.services.pubsub.addEventListener('message', evt => {
        if (evt.detail.topic === EVENTS_TOPIC) resolve(new TextDecoder().decode(evt.detail.data))
      })
    }))
    await peers[0].libp2p.services.pubsub.publish(EVENTS_TOPIC, new TextEncoder().encode('hello'))
    const timeout = new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('not delivered to all')) }, 10_000))
    expect(await Promise.race([Promise.all(received), timeout])).toEqual(Array(N - 1).fill('hello'))
  })

  it('serves health and service routes', async () => {
    const res = await fetch(`${peers[0].api.url}/v1/health`)
    const health = await res.json() as Record<string, unknown>
    expect(health).toMatchObject({ peerId: peers[0].peerId.toString(), version: expect.any(String), uptimeMs: expect.any(Number) })
    expect(health.multiaddrs).toEqual(peers[0].libp2p.getMultiaddrs().map(String))
    expect(await (await fetch(`${peers[0].api.url}/v1/echo/hi`)).json()).toEqual({ x: 'hi' })
    expect(events).toContain(`start ${peers[0].peerId.toString().slice(-4)}`)
  })

  it('keeps its PeerId across restarts with a data dir, and stop() releases its ports', async () => {
    const p0 = peers[0]
    const id = p0.peerId.toString()
    const api = p0.api.url
    const listen = p0.libp2p.getMultiaddrs()[0].toString().replace(/\/p2p\/.*$/, '')
    await p0.stop()
    expect(events).toContain(`stop ${id.slice(-4)}`)
    await expect(fetch(`${api}/v1/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow()
    const again = await createPeer(resolveConfig({ dataDir: join(dir, 'p0'), listen: [listen], apiPort: Number(new URL(api).port) }))
    peers[0] = again
    await again.start()
    expect(again.peerId.toString()).toBe(id)
    expect(again.api.url).toBe(api)
  })

  it('refuses non-loopback addresses without a swarm key', async () => {
    await expect(createPeer(resolveConfig({ listen: ['/ip4/0.0.0.0/tcp/0'] }))).rejects.toMatchObject({ name: 'InsecureAddressError', message: expect.stringContaining('--swarm-key') })
    await expect(createPeer(resolveConfig({ apiHost: '0.0.0.0' }))).rejects.toMatchObject({ name: 'InsecureAddressError' })
    await expect(createPeer(resolveConfig({ announce: ['/ip4/203.0.113.5/tcp/4001'] }))).rejects.toMatchObject({ name: 'InsecureAddressError' })
    expect(() => resolveConfig({ listen: ['/ip4/300.1.1.1/tcp/1'] })).toThrow(expect.objectContaining({ name: 'ConfigError' }))
  })

  it('reports a listen port in use with a named error', async () => {
    const blocker = createServer()
    await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', () => { resolve() }))
    const port = (blocker.address() as { port: number }).port
    try {
      const p = await createPeer(resolveConfig({ listen: [`/ip4/127.0.0.1/tcp/${port}`] }))
      await expect(p.start()).rejects.toMatchObject({ name: 'ListenError', message: expect.stringContaining('port already in use') })
      const q = await createPeer(resolveConfig({ apiPort: port }))
      await expect(q.start()).rejects.toMatchObject({ name: 'ApiListenError' })
    } finally {
      blocker.close()
    }
  })
})
