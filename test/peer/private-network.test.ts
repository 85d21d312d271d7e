import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveConfig } from '../../node/config.ts'
import { newSwarmKey } from '../../node/keys.ts'
import { createPeer, type Peer } from '../../node/peer.ts'

describe('private network (swarm key)', () => {
  let dir: string
  const started: Peer[] = []
  let keyA: string
  let keyB: string

  const peer = async (swarmKey?: string): Promise<Peer> => {
    const p = await createPeer(resolveConfig({ swarmKey, gossipHeartbeatMs: 1000 }))
    await p.start()
    started.push(p)
    return p
  }

  /** Dials `to` from `from`; answers whether a connection came up (pnet fails the handshake otherwise). */
  const canConnect = async (from: Peer, to: Peer): Promise<boolean> => {
    try {
      await from.libp2p.dial(to.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(5000) })
      return from.libp2p.getConnections(to.peerId).length > 0
    } catch {
      return false
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-pnet-'))
    keyA = join(dir, 'a.key')
    keyB = join(dir, 'b.key')
    await writeFile(keyA, newSwarmKey())
    await writeFile(keyB, newSwarmKey())
  })
  afterAll(async () => {
    await Promise.allSettled(started.map(async p => p.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  it('connects peers with the same key and no one else', async () => {
    const a = await peer(keyA)
    const a2 = await peer(keyA)
    const other = await peer(keyB)
    const none = await peer(undefined)
    expect(await canConnect(a2, a)).toBe(true)
    // failed handshakes end in a timeout: try them all at once
    expect(await Promise.all([canConnect(other, a), canConnect(a, other), canConnect(none, a), canConnect(a, none)])).toEqual([false, false, false, false])
    expect(a.libp2p.getConnections(other.peerId)).toHaveLength(0)
    expect(a.libp2p.getConnections(none.peerId)).toHaveLength(0)
  })

  it('--announce sets the addresses other peers are told to dial', async () => {
    const p = await createPeer(resolveConfig({ swarmKey: keyA, announce: ['/ip4/203.0.113.5/tcp/4001'] }))
    started.push(p)
    await p.start()
    expect(p.libp2p.getMultiaddrs().map(String)).toEqual([`/ip4/203.0.113.5/tcp/4001/p2p/${p.peerId.toString()}`])
  })

  it('names a bad swarm key file', async () => {
    const bad = join(dir, 'bad.key')
    await writeFile(bad, 'not a key\n')
    await expect(createPeer(resolveConfig({ swarmKey: bad }))).rejects.toMatchObject({ name: 'KeyFileError', message: expect.stringContaining('is not a swarm key') })
    await expect(createPeer(resolveConfig({ swarmKey: join(dir, 'missing.key') }))).rejects.toMatchObject({ name: 'KeyFileError', message: expect.stringContaining('dflow key swarm') })
  })
})
