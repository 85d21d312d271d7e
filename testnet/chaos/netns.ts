import { execFile, execFileSync, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateKey } from '../../node/keys.ts'
import { DFLOW_BIN, waitHealthy, type SpawnedPeer } from '../launcher.ts'
import { isAlive, signal, terminate } from '../process.ts'
import { waitForMesh } from '../readiness.ts'
import { CHAOS_PEER_FLAGS, type ChaosCluster, type ClusterPeer } from './cluster.ts'
import type { ManifestPeer, TestnetProgress } from '../index.ts'
import type { FaultKind } from './plan.ts'

const log = defaultLogger().forComponent('dflow:chaos:netns')
const P2P_PORT = 4001
const API_PORT = 8080

export class NetnsError extends Error {
  static readonly NAME = 'NetnsError'
  constructor (message: string) {
    super(message)
    this.name = NetnsError.NAME
  }
}

/** undefined when partitions can run here, otherwise why not ("needs root ..."). */
export function partitionSupport (): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (it creates network namespaces, veth links and a bridge)'
  try { execFileSync('ip', ['-V'], { stdio: 'ignore', timeout: 5000 }) } catch { return 'needs iproute2 (the `ip` command)' }
  // root is not always enough (a container without CAP_SYS_ADMIN): try to make and remove one namespace
  const probe = `dflow-probe-${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore', timeout: 5000 })
  } catch {
    return 'cannot create network namespaces here (no CAP_SYS_ADMIN?)'
  }
  try { execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore', timeout: 5000 }) } catch {}
  return undefined
}

async function ip (args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err == null) { resolve(); return }
      reject(new NetnsError(`ip ${args.join(' ')}: ${stderr.trim() !== '' ? stderr.trim() : err.message}`))
    })
  })
}

/**
 * A bridge in the host namespace with one network namespace per peer, each joined to it by a veth pair
 * (host end on the bridge, peer end as eth0 inside). The host keeps an address on the bridge, so the
 * harness reaches every peer's API directly. Cutting a peer = taking its host-side veth down.
 * Names carry a random tag so concurrent runs do not collide; everything created is recorded and removed
 * by destroy() (and, as a last resort, on process exit).
 */
export class NetnsNetwork {
  readonly tag: string
  readonly prefix: string
  private readonly namespaces: string[] = []
  private bridgeUp = false
  private readonly exitHook = (): void => { this.destroySync() }

  constructor (readonly peers: number) {
    if (peers < 1 || peers > 200) throw new RangeError(`peers must be 1-200 for a namespace testnet, got ${peers}`)
    this.tag = Math.floor(Math.random() * 0xfff).toString(16).padStart(3, '0')
    this.prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`
  }

  get bridge (): string { return `dfc${this.tag}br` }
  ns (i: number): string { return `dfc${this.tag}-${i}` }
  hostVeth (i: number): string { return `dfc${this.tag}h${i}` }
  addr (i: number): string { return `${this.prefix}.${10 + i}` }

  async create (): Promise<void> {
    process.once('exit', this.exitHook)
    try {
      await ip(['link', 'add', this.bridge, 'type', 'bridge'])
      this.bridgeUp = true
      await ip(['addr', 'add', `${this.prefix}.1/24`, 'dev', this.bridge])
      await ip(['link', 'set', this.bridge, 'up'])
      for (let i = 0; i < this.peers; i++) {
        const ns = this.ns(i)
        const inner = `dfc${this.tag}p${i}`
        await ip(['netns', 'add', ns])
        this.namespaces.push(ns)
        await ip(['link', 'add', this.hostVeth(i), 'type', 'veth', 'peer', 'name', inner])
        await ip(['link', 'set', inner, 'netns', ns])
        await ip(['link', 'set', this.hostVeth(i), 'master', this.bridge])
        await ip(['link', 'set', this.hostVeth(i), 'up'])
        await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
        await ip(['-n', ns, 'link', 'set', inner, 'name', 'eth0'])
        await ip(['-n', ns, 'addr', 'add', `${this.addr(i)}/24`, 'dev', 'eth0'])
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up'])
      }
      log('created bridge %s (%s.0/24) and %d namespaces', this.bridge, this.prefix, this.peers)
    } catch (err) {
      await this.destroy()
      throw err
    }
  }

  async cut (i: number): Promise<void> { await ip(['link', 'set', this.hostVeth(i), 'down']) }
  async heal (i: number): Promise<void> { await ip(['link', 'set', this.hostVeth(i), 'up']) }

  /** Deleting a namespace deletes its veth end, which deletes the pair; then the bridge. */
  async destroy (): Promise<void> {
    for (const ns of this.namespaces.splice(0)) await ip(['netns', 'del', ns]).catch(err => { log.error('%s', (err as Error).message) })
    if (this.bridgeUp) {
      this.bridgeUp = false
      await ip(['link', 'del', this.bridge]).catch(err => { log.error('%s', (err as Error).message) })
    }
    process.off('exit', this.exitHook)
  }

  destroySync (): void {
    for (const ns of this.namespaces.splice(0)) { try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {} }
    if (this.bridgeUp) { this.bridgeUp = false; try { execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' }) } catch {} }
  }
}

/** Peers as processes in network namespaces; faults are link cuts (partitions). Always owned: close() removes it all. */
export class NetnsCluster implements ChaosCluster {
  readonly owned = true
  private readonly cutOff = new Set<number>()
  private readonly exitHook = (): void => { for (const p of this.manifest) if (p.pid > 0) signal(p.pid, 'SIGKILL') }

  private constructor (readonly dir: string, private readonly net: NetnsNetwork, private readonly manifest: ManifestPeer[]) {}

  get size (): number { return this.manifest.length }

  static async start (opts: { peers: number, dir?: string, flags?: string[], onProgress?: (p: TestnetProgress) => void, timeoutMs?: number }): Promise<NetnsCluster> {
    const why = partitionSupport()
    if (why !== undefined) throw new NetnsError(`--partition ${why}`)
    const dir = resolve(opts.dir ?? await mkdtemp(join(tmpdir(), 'dflow-chaos-netns-')))
    await mkdir(dir, { recursive: true })
    const net = new NetnsNetwork(opts.peers)
    await net.create()
    const peers: ManifestPeer[] = []
    for (let i = 0; i < opts.peers; i++) {
      const dataDir = join(dir, `peer-${i}`)
      const peerId = peerIdFromPrivateKey(await loadOrCreateKey(dataDir)).toString()
      peers.push({ index: i, peerId, multiaddrs: [`/ip4/${net.addr(i)}/tcp/${P2P_PORT}/p2p/${peerId}`], api: `http://${net.addr(i)}:${API_PORT}`, pid: 0, dataDir, log: join(dir, `peer-${i}.log`) })
    }
    const cluster = new NetnsCluster(dir, net, peers)
    process.once('exit', cluster.exitHook)
    try {
      const flags = opts.flags ?? CHAOS_PEER_FLAGS
      const deadline = Date.now() + (opts.timeoutMs ?? 90_000)
      let ready = 0
      opts.onProgress?.({ phase: 'spawn', ready, total: peers.length })
      const up = async (p: ManifestPeer): Promise<void> => {
        const s = cluster.spawn(p, p.index === 0 ? [] : [peers[0].multiaddrs[0]], flags)
        await waitHealthy(p.api, p.peerId, s, p.log, Math.max(1000, deadline - Date.now()))
        opts.onProgress?.({ phase: 'spawn', ready: ++ready, total: peers.length })
      }
      await up(peers[0])
      await Promise.all(peers.slice(1).map(up))
      await waitForMesh(peers, { timeoutMs: Math.max(1000, deadline - Date.now()), onProgress: p => opts.onProgress?.({ phase: 'mesh', ...p }) })
      return cluster
    } catch (err) {
      await cluster.close()
      throw err
    }
  }

  /** `ip netns exec` execs in place, so the pid is the peer's own Node process. */
  private spawn (p: ManifestPeer, bootstrap: string[], flags: string[]): SpawnedPeer {
    const args = ['netns', 'exec', this.net.ns(p.index), process.execPath, DFLOW_BIN, 'peer',
      '--listen', `/ip4/${this.net.addr(p.index)}/tcp/${P2P_PORT}`, '--api-host', this.net.addr(p.index), '--api-port', String(API_PORT),
      '--insecure-public', '--data-dir', p.dataDir, ...bootstrap.flatMap(b => ['--bootstrap', b]), ...flags]
    const fd = openSync(p.log, 'w')
    let exited: string | undefined
    try {
      const child = spawn('ip', args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env } })
      if (child.pid == null) throw new NetnsError(`cannot spawn ip ${args.join(' ')}`)
      child.once('exit', (code, sig) => { exited = sig ?? `exit code ${code}` })
      child.once('error', err => { exited = err.message })
      child.unref()
      p.pid = child.pid
      return { pid: child.pid, exited: () => exited }
    } finally {
      closeSync(fd)
    }
  }

  peer (index: number): ClusterPeer {
    const p = this.manifest[index]
    return { index, api: p.api, pid: p.pid }
  }

  isUp (index: number): boolean {
    return !this.cutOff.has(index) && isAlive(this.manifest[index].pid)
  }

  async fault (index: number, kind: FaultKind): Promise<void> {
    this.cutOff.add(index)
    if (kind === 'partition') { await this.net.cut(index); return }
    signal(this.manifest[index].pid, 'SIGKILL')
  }

  /** Heals the link and waits until the mesh holds every peer again. */
  async recover (index: number, kind: FaultKind): Promise<void> {
    if (kind !== 'partition') throw new NetnsError('the namespace testnet heals cuts; it does not restart killed peers')
    await this.net.heal(index)
    const live = this.manifest.filter(p => isAlive(p.pid))
    await waitForMesh(live, { timeoutMs: 60_000 })
    this.cutOff.delete(index)
  }

  async close (): Promise<void> {
    const left = await terminate(this.manifest.map(p => p.pid).filter(pid => pid > 0), 3000)
    if (left.length > 0) log.error('peers still alive after SIGKILL: %s', left.join(', '))
    process.off('exit', this.exitHook)
    await this.net.destroy()
  }
}
