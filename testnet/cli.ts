import cliProgress from 'cli-progress'
import { Command } from 'commander'
import { ConfigError, configToArgs, loadConfig, parseDuration, parseFlagValues, PEER_FLAGS } from '../node/config.ts'
import { addPeerOptions, formatTable, parseIndex, UsageError } from '../node/cli/common.ts'
import { DEFAULT_DIR, openTestnet, startTestnet, type TestnetProgress } from './index.ts'
import { formatEntry, streamLogs } from './logs.ts'
import { resolve } from 'node:path'
import type { Manifest } from './manifest.ts'

/** Progress on stderr: a bar on a terminal, plain lines otherwise (only when something changed). */
export function progressReporter (stream: NodeJS.WriteStream = process.stderr): (p: TestnetProgress) => void {
  if (stream.isTTY === true) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: '{phase} [{bar}] {value}/{total} peers {lag}',
      clearOnComplete: true,
      hideCursor: true
    }, cliProgress.Presets.shades_classic)
    let started = false
    let phase = ''
    return p => {
      const label = p.phase === 'spawn' ? 'starting' : 'forming '
      const lag = p.phase === 'mesh' && p.lagging.length > 0 ? `(waiting on ${p.lagging.map(l => l.index).join(',')})` : ''
      if (!started || phase !== p.phase) {
        if (started) bar.stop()
        bar.start(p.total, p.ready, { phase: label, lag })
        started = true
        phase = p.phase
      } else {
        bar.update(p.ready, { lag })
      }
      if (p.phase === 'mesh' && p.ready === p.total && p.network.length === 0) bar.stop()
    }
  }
  let last = ''
  return p => {
    const line = p.phase === 'spawn'
      ? `started ${p.ready}/${p.total} peers`
      : `forming: ${p.ready}/${p.total} peers ready${p.lagging.length > 0 ? ` (waiting on ${p.lagging.map(l => l.index).join(', ')})` : ''}${p.network.length > 0 ? ` (${p.network.join('; ')})` : ''}`
    if (line !== last) stream.write(line + '\n')
    last = line
  }
}

export function printManifestTable (manifest: Manifest, out: NodeJS.WritableStream = process.stdout): void {
  out.write(formatTable(['index', 'peerId', 'api', 'pid'], manifest.peers.map(p => [String(p.index), p.peerId, p.api, String(p.pid)])) + '\n')
}

/** Every peer serves the dashboard at its API address. */
export function printDashboards (manifest: Manifest, out: NodeJS.WritableStream = process.stdout): void {
  for (const p of manifest.peers) out.write(`dashboard of peer ${p.index}: ${p.api}/\n`)
}

const dirOption = (cmd: Command): Command => cmd.option('--dir <dir>', 'testnet directory', DEFAULT_DIR)

export function registerTestnetCommands (program: Command): void {
  const testnet = program.command('testnet').description('a local testnet of peer processes on 127.0.0.1')

  const up = dirOption(testnet.command('up')
    .description('start N peers in the background and wait until they form a full mesh')
    .requiredOption('--peers <n>', 'number of peers')
    .option('--timeout <duration>', 'how long to wait for the network to form', '90s')
    .option('--config <file>', 'JSON peer config file passed to every peer'))
  addPeerOptions(up, def => def.passThrough)
  up.addHelpText('after', `\nPeer settings passed to every peer: ${PEER_FLAGS.filter(d => d.passThrough).map(d => '--' + d.flag).join(', ')}`)
  up.action(async (opts: Record<string, string>) => {
    const peers = parseIndex(opts.peers, '--peers')
    if (peers < 1) throw new UsageError('--peers must be at least 1')
    let flags: string[]
    let timeoutMs: number
    try {
      timeoutMs = parseDuration(opts.timeout, '--timeout')
      const partial = parseFlagValues(opts)
      flags = configToArgs(partial)
      if (opts.config != null) {
        const file = resolve(opts.config)
        await loadConfig({ configFile: file }) // fail here, not in N peer logs
        flags.unshift('--config', file)
      }
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    const t0 = Date.now()
    const net = await startTestnet({ peers, dir: opts.dir, flags, timeoutMs, onProgress: progressReporter() })
    process.stderr.write(`testnet of ${peers} peers formed in ${((Date.now() - t0) / 1000).toFixed(1)} s; manifest ${net.dir}/manifest.json\n`)
    printManifestTable(net.manifest)
    printDashboards(net.manifest)
  })

  dirOption(testnet.command('logs')
    .description('the peers\' own process logs merged in time order (what functions wrote: dflow logs REQUEST_ID)')
    .option('--peer <i>', 'only peer I')
    .option('--follow', 'keep printing new lines until interrupted'))
    .action(async (opts: { dir: string, peer?: string, follow?: boolean }) => {
      const net = await openTestnet(opts.dir)
      const peer = opts.peer === undefined ? undefined : parseIndex(opts.peer, '--peer')
      if (peer !== undefined && !net.manifest.peers.some(p => p.index === peer)) throw new UsageError(`--peer ${peer}: the testnet in ${net.dir} has peers 0-${net.manifest.peers.length - 1}`)
      const controller = new AbortController()
      const stop = (): void => { controller.abort() }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      try {
        await streamLogs(net.manifest, e => { process.stdout.write(formatEntry(e) + '\n') }, { peer, follow: opts.follow === true, signal: controller.signal })
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
      }
    })

  dirOption(testnet.command('status')
    .description('show each peer alive or dead and its peer count')
    .option('--json', 'machine-readable output'))
    .action(async (opts: { dir: string, json?: boolean }) => {
      const net = await openTestnet(opts.dir)
      const status = await net.status()
      if (opts.json === true) {
        process.stdout.write(JSON.stringify({ status: net.manifest.status, peers: status }, null, 2) + '\n')
        return
      }
      process.stdout.write(`testnet ${net.dir}: ${net.manifest.status}, ${status.filter(s => s.alive).length}/${status.length} alive\n`)
      const n = (v?: number): string => v == null ? '-' : String(v)
      process.stdout.write(formatTable(['index', 'peerId', 'pid', 'state', 'connected', 'routing', 'subscribed', 'api'],
        status.map(s => [String(s.index), s.peerId, String(s.pid), s.alive ? 'alive' : 'dead', n(s.connected), n(s.routingTable), n(s.subscribed), s.api])) + '\n')
    })

  dirOption(testnet.command('kill')
    .description('SIGKILL peer I (a crash, not a stop)')
    .argument('<index>', 'peer index'))
    .action(async (index: string, opts: { dir: string }) => {
      const i = parseIndex(index)
      const net = await openTestnet(opts.dir)
      await net.kill(i)
      process.stdout.write(`killed peer ${i} (pid ${net.manifest.peers[i].pid})\n`)
    })

  dirOption(testnet.command('restart')
    .description('start peer I again with the same identity, ports and data dir')
    .argument('<index>', 'peer index')
    .option('--timeout <duration>', 'how long to wait for it to rejoin', '60s'))
    .action(async (index: string, opts: { dir: string, timeout: string }) => {
      const i = parseIndex(index)
      let timeoutMs: number
      try { timeoutMs = parseDuration(opts.timeout, '--timeout') } catch (err) { throw new UsageError((err as Error).message) }
      const net = await openTestnet(opts.dir)
      const peer = await net.restart(i, { timeoutMs, onProgress: progressReporter() })
      process.stdout.write(`restarted peer ${i}: ${peer.peerId} pid ${peer.pid}\n`)
    })

  dirOption(testnet.command('down')
    .description('stop every peer (SIGTERM, SIGKILL after a grace period)')
    .option('--grace <duration>', 'grace period before SIGKILL', '5s'))
    .action(async (opts: { dir: string, grace: string }) => {
      let graceMs: number
      try { graceMs = parseDuration(opts.grace, '--grace') } catch (err) { throw new UsageError((err as Error).message) }
      const net = await openTestnet(opts.dir)
      await net.stop(graceMs)
      process.stdout.write(`testnet ${net.dir} is down (${net.manifest.peers.length} peers stopped)\n`)
    })
}
