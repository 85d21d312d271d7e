/**
 * Peers as test hosts in network namespaces, for partitions (chaos) and rate-limited links (bench): a bridge
 * in the host namespace, one namespace per peer joined to it by a veth pair, optionally a token-bucket rate
 * limit (tc tbf) on both ends of every link. Needs root and iproute2. Names carry a random tag so concurrent
 * runs do not collide; everything created (namespaces, bridge, peer processes) is recorded and removed by
 * destroy(), and on process exit as a last resort.
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateKey } from '../node/keys.ts'
import { DFLOW_BIN, peerNodeArgs, waitHealthy, type SpawnedPeer } from './launcher.ts'
import { signal, terminate } from './process.ts'
import { waitForMesh } from './readiness.ts'
import { prepareTrust } from './trust.ts'
import { registerCredentials } from './clients.ts'
import type { TestnetProgress } from './index.ts'
import type { ManifestPeer } from './manifest.ts'

const log = defaultLogger().forComponent('dflow:testnet:netns')
export const NETNS_P2P_PORT = 4001
export const NETNS_API_PORT = 8080

export class NetnsError extends Error {
  static readonly NAME = 'NetnsError'
  constructor (message: string) {
    super(message)
    this.name = NetnsError.NAME
  }
}

/** undefined when namespaces can be made here; otherwise why not. Root is not always enough, so it tries. */
export function netnsSupport (opts: { tc?: boolean } = {}): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (it creates network namespaces, veth links and a bridge)'
  for (const tool of ['ip', ...(opts.tc === true ? ['tc'] : [])]) {
    try { execFileSync(tool, ['-V'], { stdio: 'ignore', timeout: 5000 }) } catch { return `needs iproute2 (\`${tool}\` is not available)` }
  }
  const probe = `dflow-probe-${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore', timeout: 5000 })
  } catch {
    return 'cannot create network namespaces here (no CAP_SYS_ADMIN?)'
  }
  try { execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore', timeout: 5000 }) } catch {}
  return undefined
}

async function run (cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err == null) { resolve(); return }
      reject(new NetnsError(`${cmd} ${args.join(' ')}: ${stderr.trim() !== '' ? stderr.trim() : err.message}`))
    })
  })
}

export interface NetnsNetworkOptions {
  /** bytes per second on each link, both directions; no limit when absent */
  linkRate?: number
}

export class NetnsNetwork {
  readonly tag: string
  readonly prefix: string
  /** peer processes started in the namespaces, killed on destroy */
  readonly pids: number[] = []
  private readonly namespaces: string[] = []
  private bridgeUp = false
  private dir?: string
  private readonly exitHook = (): void => { this.destroySync() }

  constructor (readonly peers: number, private readonly opts: NetnsNetworkOptions = {}) {
    if (peers < 1 || peers > 200) throw new RangeError(`peers must be 1-200 for a namespace testnet, got ${peers}`)
    this.tag = Math.floor(Math.random() * 0xfff).toString(16).padStart(3, '0')
    this.prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`
  }

  get bridge (): string { return `dfn${this.tag}br` }
  ns (i: number): string { return `dfn${this.tag}-${i}` }
  hostVeth (i: number): string { return `dfn${this.tag}h${i}` }
  addr (i: number): string { return `${this.prefix}.${10 + i}` }
  get namespaceNames (): string[] { return [...this.namespaces] }

  async create (): Promise<void> {
    process.once('exit', this.exitHook)
    try {
      await run('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
      this.bridgeUp = true
      await run('ip', ['addr', 'add', `${this.prefix}.1/24`, 'dev', this.bridge])
      await run('ip', ['link', 'set', this.bridge, 'up'])
      for (let i = 0; i < this.peers; i++) await this.addHost(i)
      log('created bridge %s (%s.0/24) and %d namespaces', this.bridge, this.prefix, this.peers)
    } catch (err) {
      await this.destroy()
      throw err
    }
  }

  private async addHost (i: number): Promise<void> {
    const ns = this.ns(i)
    const inner = `dfn${this.tag}p${i}`
    await run('ip', ['netns', 'add', ns])
    this.namespaces.push(ns)
    await run('ip', ['link', 'add', this.hostVeth(i), 'type', 'veth', 'peer', 'name', inner])
    await run('ip', ['link', 'set', inner, 'netns', ns])
    await run('ip', ['link', 'set', this.hostVeth(i), 'master', this.bridge])
    await run('ip', ['link', 'set', this.hostVeth(i), 'up'])
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    await run('ip', ['-n', ns, 'link', 'set', inner, 'name', 'eth0'])
    await run('ip', ['-n', ns, 'addr', 'add', `${this.addr(i)}/24`, 'dev', 'eth0'])
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    const rate = this.opts.linkRate
    if (rate === undefined) return
    // tbf: rate in bit/s; the bucket must hold at least one timer tick of traffic, 32 KiB at the least.
    // The host end shapes what the peer receives, the namespace end what it sends.
    const tbf = ['root', 'tbf', 'rate', `${Math.round(rate * 8)}bit`, 'burst', String(Math.max(32 * 1024, Math.ceil(rate / 50))), 'latency', '100ms']
    await run('tc', ['qdisc', 'add', 'dev', this.hostVeth(i), ...tbf])
    await run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', ...tbf])
  }

  async cut (i: number): Promise<void> { await run('ip', ['link', 'set', this.hostVeth(i), 'down']) }
  async heal (i: number): Promise<void> { await run('ip', ['link', 'set', this.hostVeth(i), 'up']) }

  /** Stops the peers, then deletes the namespaces (which deletes their veth pairs) and the bridge. */
  async destroy (): Promise<void> {
    const left = await terminate(this.pids.splice(0).filter(pid => pid > 0), 3000)
    if (left.length > 0) log.error('peers still alive after SIGKILL: %s', left.join(', '))
    for (const ns of this.namespaces.splice(0)) await run('ip', ['netns', 'del', ns]).catch(err => { log.error('%s', (err as Error).message) })
    if (this.bridgeUp) {
      this.bridgeUp = false
      await run('ip', ['link', 'del', this.bridge]).catch(err => { log.error('%s', (err as Error).message) })
    }
    process.off('exit', this.exitHook)
  }

  destroySync (): void {
    for (const pid of this.pids.splice(0)) signal(pid, 'SIGKILL')
    for (const ns of this.namespaces.splice(0)) { try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {} }
    if (this.bridgeUp) { this.bridgeUp = false; try { execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' }) } catch {} }
  }

  /** Manifest entries for the peers (identities made now, so every bootstrap address is known up front). */
  async manifest (dir: string): Promise<ManifestPeer[]> {
    this.dir = dir
    const peers: ManifestPeer[] = []
    for (let i = 0; i < this.peers; i++) {
      const dataDir = join(dir, `peer-${i}`)
      await mkdir(dataDir, { recursive: true })
      const peerId = peerIdFromPrivateKey(await loadOrCreateKey(dataDir)).toString()
      peers.push({ index: i, peerId, multiaddrs: [`/ip4/${this.addr(i)}/tcp/${NETNS_P2P_PORT}/p2p/${peerId}`], api: `http://${this.addr(i)}:${NETNS_API_PORT}`, pid: 0, dataDir, log: join(dir, `peer-${i}.log`) })
    }
    return peers
  }

  /** Starts peer `p` in its namespace. `ip netns exec` execs in place, so the pid is the peer's own Node process. */
  spawn (p: ManifestPeer, bootstrap: string[], flags: string[]): SpawnedPeer {
    const args = ['netns', 'exec', this.ns(p.index), process.execPath, ...peerNodeArgs(), DFLOW_BIN, 'peer',
      '--listen', `/ip4/${this.addr(p.index)}/tcp/${NETNS_P2P_PORT}`, '--api-host', this.addr(p.index), '--api-port', String(NETNS_API_PORT),
      '--data-dir', p.dataDir, ...bootstrap.flatMap(b => ['--bootstrap', b]), ...flags]
    const fd = openSync(p.log, 'w')
    let exited: string | undefined
    try {
      const child = spawn('ip', args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env } })
      if (child.pid == null) throw new NetnsError(`cannot spawn ip ${args.join(' ')}`)
      child.once('exit', (code, sig) => { exited = sig ?? `exit code ${code}` })
      child.once('error', err => { exited = err.message })
      child.unref()
      p.pid = child.pid
      this.pids.push(child.pid)
      return { pid: child.pid, exited: () => exited }
    } finally {
      closeSync(fd)
    }
  }

  /**
   * Starts every peer (peer 0 first, the others bootstrapping from it) and waits until the mesh has formed.
   * The peers listen on non-loopback addresses, so they form a private network: the directory's swarm key
   * (made if missing) and its authorized client identity, as `dflow testnet up` does.
   */
  async startPeers (peers: ManifestPeer[], userFlags: string[], opts: { timeoutMs?: number, onProgress?: (p: TestnetProgress) => void } = {}): Promise<void> {
    if (this.dir === undefined) throw new NetnsError('call manifest(dir) before startPeers()')
    const dir = this.dir
    const flags = await prepareTrust(dir, userFlags)
    const deadline = Date.now() + (opts.timeoutMs ?? 90_000)
    let ready = 0
    opts.onProgress?.({ phase: 'spawn', ready, total: peers.length })
    const up = async (p: ManifestPeer): Promise<void> => {
      const s = this.spawn(p, p.index === 0 ? [] : [peers[0].multiaddrs[0]], flags)
      await waitHealthy(p.api, p.peerId, s, p.log, Math.max(1000, deadline - Date.now()))
      opts.onProgress?.({ phase: 'spawn', ready: ++ready, total: peers.length })
    }
    await up(peers[0])
    await Promise.all(peers.slice(1).map(up))
    await registerCredentials(dir, peers)
    await waitForMesh(peers, { timeoutMs: Math.max(1000, deadline - Date.now()), onProgress: p => opts.onProgress?.({ phase: 'mesh', ...p }) })
  }
}
