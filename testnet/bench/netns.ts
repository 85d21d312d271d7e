/**
 * `--link-rate`: peers as test hosts, each in its own network namespace, joined by veth pairs to one bridge,
 * with a token-bucket rate limit (tc tbf) on both ends of every link, so each peer's uplink and downlink run at
 * the given rate (FaaSFlow's testbed: 50 MB/s). Needs root and iproute2. Everything created here (namespaces,
 * bridge, peer processes) is removed on stop(), on failure, and on process exit or SIGINT/SIGTERM.
 */
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultLogger } from '@libp2p/logger'
import { loadOrCreateKey } from '../../node/keys.ts'
import { DFLOW_BIN, waitHealthy, type SpawnedPeer } from '../launcher.ts'
import { waitForMesh } from '../readiness.ts'
import { terminate } from '../process.ts'
import type { ManifestPeer } from '../manifest.ts'
import type { TestnetProgress } from '../index.ts'

const log = defaultLogger().forComponent('dflow:bench:netns')
const API_PORT = 8080
const P2P_PORT = 4001

export class LinkRateUnsupportedError extends Error {
  static readonly NAME = 'LinkRateUnsupportedError'
  constructor (message: string) {
    super(message)
    this.name = LinkRateUnsupportedError.NAME
  }
}

function run (cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 })
}

/** Throws LinkRateUnsupportedError unless we are root and `ip` and `tc` (iproute2) work. */
export function requireLinkRateSupport (): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new LinkRateUnsupportedError('--link-rate needs root (it creates network namespaces, veth links and tc rate limits) and iproute2; run as root or drop --link-rate')
  }
  for (const tool of ['ip', 'tc']) {
    try { run(tool, ['-V']) } catch {
      throw new LinkRateUnsupportedError(`--link-rate needs root and iproute2: \`${tool}\` is not available (install iproute2)`)
    }
  }
}

export interface NetnsTestnet {
  peers: Array<{ index: number, api: string, peerId: string }>
  /** the namespaces and bridge created (for tests and cleanup checks) */
  namespaces: string[]
  bridge: string
  stop: () => Promise<void>
}

/** Names and addresses of one netns testnet; distinct per run so concurrent benches do not clash. */
export function netnsPlan (peers: number, tag = randomBytes(2).toString('hex')): { bridge: string, subnet: string, hosts: Array<{ ns: string, hostIf: string, peerIf: string, ip: string }> } {
  const a = 200 + (parseInt(tag, 16) % 50)
  const b = parseInt(tag, 16) % 250
  const hosts = Array.from({ length: peers }, (_, i) => ({ ns: `dflow-${tag}-${i}`, hostIf: `dfh${tag}${i}`, peerIf: `dfp${tag}${i}`, ip: `10.${a}.${b}.${i + 2}` }))
  return { bridge: `dfb${tag}`, subnet: `10.${a}.${b}`, hosts }
}

export async function startNetnsTestnet (opts: { peers: number, dir: string, flags: string[], linkRate: number, timeoutMs?: number, onProgress?: (p: TestnetProgress) => void }): Promise<NetnsTestnet> {
  requireLinkRateSupport()
  if (opts.peers > 200) throw new RangeError('at most 200 peers in netns mode')
  const plan = netnsPlan(opts.peers)
  const pids: number[] = []
  const made: { bridge: boolean, ns: string[] } = { bridge: false, ns: [] }
  let cleaned = false
  const cleanupSync = (): void => {
    if (cleaned) return
    cleaned = true
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    for (const ns of made.ns) { try { run('ip', ['netns', 'del', ns]) } catch (err) { log.error('ip netns del %s: %e', ns, err) } }
    if (made.bridge) { try { run('ip', ['link', 'del', plan.bridge]) } catch (err) { log.error('ip link del %s: %e', plan.bridge, err) } }
  }
  const onSignal = (sig: NodeJS.Signals): void => { cleanupSync(); process.kill(process.pid, sig) }
  const detach = (): void => {
    process.off('exit', cleanupSync)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  process.once('exit', cleanupSync)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const stop = async (): Promise<void> => {
    try {
      await terminate(pids, 5000)
    } finally {
      cleanupSync()
      detach()
    }
  }
  try {
    // tbf: rate in bit/s; the bucket must hold at least one timer tick of traffic, 32 KiB at the least
    const rate = `${Math.round(opts.linkRate * 8)}bit`
    const burst = `${Math.max(32 * 1024, Math.ceil(opts.linkRate / 50))}`
    run('ip', ['link', 'add', plan.bridge, 'type', 'bridge'])
    made.bridge = true
    run('ip', ['addr', 'add', `${plan.subnet}.1/24`, 'dev', plan.bridge])
    run('ip', ['link', 'set', plan.bridge, 'up'])
    for (const h of plan.hosts) {
      run('ip', ['netns', 'add', h.ns])
      made.ns.push(h.ns)
      run('ip', ['link', 'add', h.hostIf, 'type', 'veth', 'peer', 'name', h.peerIf])
      run('ip', ['link', 'set', h.peerIf, 'netns', h.ns])
      run('ip', ['link', 'set', h.hostIf, 'master', plan.bridge])
      run('ip', ['link', 'set', h.hostIf, 'up'])
      run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up'])
      run('ip', ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.peerIf])
      run('ip', ['-n', h.ns, 'link', 'set', h.peerIf, 'up'])
      // both directions of the link: host end shapes what the peer receives, namespace end what it sends
      run('tc', ['qdisc', 'add', 'dev', h.hostIf, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '100ms'])
      run('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', 'add', 'dev', h.peerIf, 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '100ms'])
    }
    const peers: ManifestPeer[] = []
    for (const [i, h] of plan.hosts.entries()) {
      const dataDir = join(opts.dir, `peer-${i}`)
      mkdirSync(dataDir, { recursive: true })
      const peerId = peerIdFromPrivateKey(await loadOrCreateKey(dataDir)).toString()
      peers.push({ index: i, peerId, multiaddrs: [`/ip4/${h.ip}/tcp/${P2P_PORT}/p2p/${peerId}`], api: `http://${h.ip}:${API_PORT}`, pid: 0, dataDir, log: join(opts.dir, `peer-${i}.log`) })
    }
    const deadline = Date.now() + (opts.timeoutMs ?? 90_000)
    const spawned: SpawnedPeer[] = []
    let ready = 0
    opts.onProgress?.({ phase: 'spawn', ready, total: peers.length })
    for (const [i, h] of plan.hosts.entries()) {
      const p = peers[i]
      const args = ['netns', 'exec', h.ns, process.execPath, DFLOW_BIN, 'peer', '--listen', `/ip4/${h.ip}/tcp/${P2P_PORT}`, '--api-host', h.ip, '--api-port', String(API_PORT), '--data-dir', p.dataDir, '--insecure-public', ...(i === 0 ? [] : ['--bootstrap', peers[0].multiaddrs[0]]), ...opts.flags]
      const fd = openSync(p.log, 'w')
      let exited: string | undefined
      try {
        // `ip netns exec` execs the command, so the pid is the peer's own
        const child = spawn('ip', args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env } })
        if (child.pid === undefined) throw new Error(`cannot spawn ip ${args.join(' ')}`)
        child.once('exit', (code, sig) => { exited = sig ?? `exit code ${code}` })
        child.unref()
        p.pid = child.pid
        pids.push(child.pid)
        spawned[i] = { pid: child.pid, exited: () => exited }
      } finally {
        closeSync(fd)
      }
      if (i === 0) {
        await waitHealthy(p.api, p.peerId, spawned[0], p.log, Math.max(1000, deadline - Date.now()))
        opts.onProgress?.({ phase: 'spawn', ready: ++ready, total: peers.length })
      }
    }
    await Promise.all(peers.slice(1).map(async p => {
      await waitHealthy(p.api, p.peerId, spawned[p.index], p.log, Math.max(1000, deadline - Date.now()))
      opts.onProgress?.({ phase: 'spawn', ready: ++ready, total: peers.length })
    }))
    await waitForMesh(peers, { timeoutMs: Math.max(1000, deadline - Date.now()), onProgress: m => opts.onProgress?.({ phase: 'mesh', ...m }) })
    return { peers: peers.map(p => ({ index: p.index, api: p.api, peerId: p.peerId })), namespaces: plan.hosts.map(h => h.ns), bridge: plan.bridge, stop }
  } catch (err) {
    await stop().catch(() => {})
    throw err
  }
}
