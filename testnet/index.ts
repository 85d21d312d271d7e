import '../node/util/polyfill.ts'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { configToArgs, parseConfigObject, type PeerConfig } from '../node/config.ts'
import { loadOrCreateKey } from '../node/keys.ts'
import { PeerStartError, spawnPeer, waitHealthy, type SpawnedPeer } from './launcher.ts'
import { peerBundle } from './bundle.ts'
import { readManifest, requireManifest, writeManifest, type Manifest, type ManifestPeer } from './manifest.ts'
import { freePorts, isAlive, signal, terminate, waitDead } from './process.ts'
import { waitForMesh, type MeshProgress } from './readiness.ts'
import { prepareTrust } from './trust.ts'
import { authHeaderFor, registerCredentials, testnetClient, testnetClients } from './clients.ts'
import type { DflowClient, ClientOptions } from '../node/client.ts'
import type { PeersResponse } from '../node/api/peers.ts'

export { readManifest, writeManifest, type Manifest, type ManifestPeer } from './manifest.ts'
export { TestnetTimeoutError, type MeshProgress, type LaggingPeer } from './readiness.ts'
export { PeerStartError } from './launcher.ts'
export { isAlive } from './process.ts'
export { credentialsFor, authHeaderFor, testnetClient, testnetClients } from './clients.ts'

export const DEFAULT_DIR = '.testnet'

export class TestnetRunningError extends Error {
  static readonly NAME = 'TestnetRunningError'
  constructor (message: string) {
    super(message)
    this.name = TestnetRunningError.NAME
  }
}

export class NoSuchPeerError extends Error {
  static readonly NAME = 'NoSuchPeerError'
  constructor (message: string) {
    super(message)
    this.name = NoSuchPeerError.NAME
  }
}

export type TestnetProgress = { phase: 'spawn', ready: number, total: number } | ({ phase: 'mesh' } & MeshProgress)

export interface StartTestnetOptions {
  peers: number
  /** @default '.testnet' */
  dir?: string
  /** peer settings for every peer: `dflow peer` flags, or a partial config */
  flags?: string[] | Partial<PeerConfig>
  /** until every peer is healthy and the mesh has formed. @default 90000 */
  timeoutMs?: number
  onProgress?: (p: TestnetProgress) => void
}

export interface PeerStatus {
  index: number
  peerId: string
  pid: number
  api: string
  alive: boolean
  /** from its /v1/peers; undefined when dead or not answering */
  connected?: number
  routingTable?: number
  subscribed?: number
}

function toFlags (flags: StartTestnetOptions['flags']): string[] {
  if (flags == null) return []
  if (Array.isArray(flags)) return [...flags]
  return configToArgs(parseConfigObject(flags, 'flags'))
}

function listenOf (peer: ManifestPeer): string {
  return peer.multiaddrs[0].replace(/\/p2p\/[^/]+$/, '')
}

function withPeerId (listen: string, peerId: string): string {
  return `${listen}/p2p/${peerId}`
}

/** A running (or stopped) testnet described by DIR/manifest.json. */
export class Testnet {
  readonly dir: string
  private current: Manifest

  constructor (dir: string, manifest: Manifest) {
    this.dir = dir
    this.current = manifest
  }

  get manifest (): Manifest {
    return this.current
  }

  /** A client of peer i with its API token, signing with the testnet's client identity (DIR/client.key). */
  async client (index: number, opts: ClientOptions = {}): Promise<DflowClient> {
    return testnetClient(this.dir, this.peer(index), opts)
  }

  /** Clients of every peer, in manifest order. */
  async clients (opts: ClientOptions = {}): Promise<DflowClient[]> {
    return testnetClients(this.dir, this.current.peers, opts)
  }

  private peer (index: number): ManifestPeer {
    const peer = this.current.peers.find(p => p.index === index)
    if (peer == null) {
      throw new NoSuchPeerError(`no peer ${index} in the testnet in ${this.dir} (it has peers 0-${this.current.peers.length - 1})`)
    }
    return peer
  }

  /** SIGKILL peer i: a crash, not a stop. */
  async kill (index: number): Promise<void> {
    const peer = this.peer(index)
    signal(peer.pid, 'SIGKILL')
    const left = await waitDead([peer.pid], 5000)
    if (left.length > 0) throw new Error(`peer ${index} (pid ${peer.pid}) survived SIGKILL`)
  }

  /**
   * Starts peer i again with the same identity, ports and data dir, bootstrapping from every other peer,
   * and waits until the live peers form a full mesh again.
   */
  async restart (index: number, opts: { timeoutMs?: number, onProgress?: (p: TestnetProgress) => void } = {}): Promise<ManifestPeer> {
    const peer = this.peer(index)
    const timeoutMs = opts.timeoutMs ?? 60_000
    if (isAlive(peer.pid)) await terminate([peer.pid])
    const spawned = spawnPeer({
      listen: listenOf(peer),
      apiPort: Number(new URL(peer.api).port),
      dataDir: peer.dataDir,
      log: peer.log,
      bootstrap: this.current.peers.filter(p => p !== peer).map(p => p.multiaddrs[0]),
      flags: this.current.flags,
      bundle: await peerBundle()
    })
    const updated = { ...peer, pid: spawned.pid }
    this.current = { ...this.current, status: 'up', peers: this.current.peers.map(p => p.index === index ? updated : p) }
    await writeManifest(this.dir, this.current)
    await waitHealthy(peer.api, peer.peerId, spawned, peer.log, timeoutMs)
    await registerCredentials(this.dir, [updated])
    await this.waitReady({ timeoutMs, onProgress: opts.onProgress })
    return updated
  }

  /** Waits until every live peer's routing table and subscriber list hold every other live peer. */
  async waitReady (opts: { timeoutMs?: number, onProgress?: (p: TestnetProgress) => void } = {}): Promise<void> {
    const live = this.current.peers.filter(p => isAlive(p.pid))
    await waitForMesh(live, { timeoutMs: opts.timeoutMs ?? 60_000, onProgress: p => opts.onProgress?.({ phase: 'mesh', ...p }) })
  }

  async status (): Promise<PeerStatus[]> {
    return Promise.all(this.current.peers.map(async (p): Promise<PeerStatus> => {
      const s: PeerStatus = { index: p.index, peerId: p.peerId, pid: p.pid, api: p.api, alive: isAlive(p.pid) }
      if (!s.alive) return s
      try {
        const res = await fetch(`${p.api}/v1/peers`, { headers: authHeaderFor(p.api), signal: AbortSignal.timeout(3000) })
        const body = await res.json() as PeersResponse
        s.connected = body.peers.filter(x => x.connected).length
        s.routingTable = body.peers.filter(x => x.inRoutingTable).length
        s.subscribed = body.peers.filter(x => x.subscribed).length
      } catch {}
      return s
    }))
  }

  /** Stops every peer (SIGTERM, SIGKILL after graceMs), verifies none remains, marks the manifest down. */
  async stop (graceMs = 5000): Promise<void> {
    const left = await terminate(this.current.peers.map(p => p.pid), graceMs)
    if (left.length > 0) throw new Error(`processes still alive after SIGKILL: ${left.join(', ')}`)
    this.current = { ...this.current, status: 'down' }
    await writeManifest(this.dir, this.current)
  }
}

/** Opens the testnet recorded in DIR (running or not). */
export async function openTestnet (dir: string = DEFAULT_DIR): Promise<Testnet> {
  const abs = resolve(dir)
  const manifest = await requireManifest(abs)
  await registerCredentials(abs, manifest.peers)
  return new Testnet(abs, manifest)
}

/**
 * Starts `peers` peer processes under DIR (data dir and log each), peer 0 as bootstrap for the rest, and waits
 * until the network has formed. On failure it stops what it started and throws.
 */
export async function startTestnet (opts: StartTestnetOptions): Promise<Testnet> {
  if (!Number.isInteger(opts.peers) || opts.peers < 1) throw new RangeError(`peers must be a positive integer, got ${opts.peers}`)
  const dir = resolve(opts.dir ?? DEFAULT_DIR)
  const timeoutMs = opts.timeoutMs ?? 90_000
  const previous = await readManifest(dir)
  const running = previous?.peers.filter(p => isAlive(p.pid)) ?? []
  if (running.length > 0) {
    throw new TestnetRunningError(`the testnet in ${dir} is still running (pids ${running.map(p => p.pid).join(', ')}); run: dflow testnet down --dir ${dir}`)
  }
  await mkdir(dir, { recursive: true })
  const flags = await prepareTrust(dir, toFlags(opts.flags))
  // identities are made here, before spawning, so every bootstrap address (with /p2p/<id>) is known up front
  // and all peers can start at once
  const ports = await freePorts(opts.peers * 2)
  const peers: ManifestPeer[] = []
  for (let i = 0; i < opts.peers; i++) {
    const dataDir = join(dir, `peer-${i}`)
    const peerId = peerIdFromPrivateKey(await loadOrCreateKey(dataDir)).toString()
    peers.push({
      index: i,
      peerId,
      multiaddrs: [withPeerId(`/ip4/127.0.0.1/tcp/${ports[2 * i]}`, peerId)],
      api: `http://127.0.0.1:${ports[2 * i + 1]}`,
      pid: 0,
      dataDir,
      log: join(dir, `peer-${i}.log`)
    })
  }
  const spawned: SpawnedPeer[] = []
  const bundle = await peerBundle()
  let testnet: Testnet | undefined
  try {
    const spawnOne = (p: ManifestPeer): SpawnedPeer => {
      const s = spawnPeer({
        listen: listenOf(p),
        apiPort: Number(new URL(p.api).port),
        dataDir: p.dataDir,
        log: p.log,
        bootstrap: p.index === 0 ? [] : [peers[0].multiaddrs[0]],
        flags,
        truncateLog: true,
        bundle
      })
      p.pid = s.pid
      spawned[p.index] = s
      return s
    }
    const deadline = Date.now() + timeoutMs
    let healthy = 0
    const untilHealthy = async (p: ManifestPeer): Promise<void> => {
      let health
      for (let attempt = 1; ; attempt++) {
        try {
          health = await waitHealthy(p.api, p.peerId, spawned[p.index], p.log, Math.max(1000, deadline - Date.now()))
          break
        } catch (err) {
          // the ports were free when picked, but were released before the peer bound them: any process (a dial's
          // ephemeral port, another testnet) may take one in between. Pick new ones and start the peer again.
          if (!(err instanceof PeerStartError) || !/already in use/.test(err.message) || attempt >= 3) throw err
          const [listen, api] = await freePorts(2)
          p.multiaddrs = [withPeerId(`/ip4/127.0.0.1/tcp/${listen}`, p.peerId)]
          p.api = `http://127.0.0.1:${api}`
          spawnOne(p)
          await writeManifest(dir, (testnet as Testnet).manifest)
        }
      }
      // record what the peer itself reports (the address it actually bound, with /p2p/<id>)
      if (health.multiaddrs.length > 0) p.multiaddrs = health.multiaddrs
      opts.onProgress?.({ phase: 'spawn', ready: ++healthy, total: peers.length })
    }
    opts.onProgress?.({ phase: 'spawn', ready: 0, total: peers.length })
    // peer 0 first: the bootstrap module dials once at start, and the others all bootstrap from it
    spawnOne(peers[0])
    testnet = new Testnet(dir, { status: 'up', flags, peers })
    await writeManifest(dir, testnet.manifest)
    await untilHealthy(peers[0])
    for (const p of peers.slice(1)) spawnOne(p)
    await writeManifest(dir, testnet.manifest)
    await Promise.all(peers.slice(1).map(untilHealthy))
    await writeManifest(dir, testnet.manifest)
    await registerCredentials(dir, peers)
    await waitForMesh(peers, {
      timeoutMs: Math.max(1000, deadline - Date.now()),
      onProgress: p => opts.onProgress?.({ phase: 'mesh', ...p })
    })
    return testnet
  } catch (err) {
    await terminate(peers.map(p => p.pid).filter(pid => pid > 0), 3000)
    await writeManifest(dir, { status: 'down', flags, peers })
    throw err
  }
}
