import { Command } from 'commander'
import { ConfigError, loadConfig, PEER_FLAGS } from '../config.ts'
import type { Peer } from '../peer.ts'
import { addPeerOptions, UsageError } from './common.ts'

/** The machine-readable line `dflow peer` prints on stdout once ready (the testnet launcher waits for it). */
export const READY_MARKER = 'DFLOW_READY'

export interface ReadyInfo {
  peerId: string
  multiaddrs: string[]
  api: string
  pid: number
}

export function registerPeerCommand (program: Command): void {
  const cmd = program.command('peer')
    .description('run one peer in the foreground (SIGINT/SIGTERM stop it cleanly)')
    .option('--config <file>', 'JSON file with peer settings (flags override it)')
  addPeerOptions(cmd)
  cmd.addHelpText('after', `
Durations accept 500ms, 30s, 2m, 1h or a number of ms; sizes accept 16384, 16k, 1m, 2g.
Config file keys: ${PEER_FLAGS.map(f => f.key).join(', ')}.`)
  cmd.action(async (opts: Record<string, unknown>) => {
    let config
    try {
      config = await loadConfig({ configFile: opts.config as string | undefined, flags: opts })
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    // loaded here, not at the top: every other dflow command would pay for importing the whole peer
    const { createDflowPeer } = await import('../dflow-peer.ts')
    const { IdleGc } = await import('../util/idle-gc.ts')
    const { MallocTrim } = await import('../util/malloc-trim.ts')
    const { peer, services, observability } = await createDflowPeer(config)
    await peer.start()
    // a process-wide GC, so here and not in the peer (tests run many peers in one process): see idle-gc.ts
    // DFLOW_NO_IDLE_GC=1 leaves it to V8 (A/B runs)
    const log = peer.logger.forComponent('dflow:idle-gc')
    // DFLOW_IDLE_GC_COMPACT=0: a plain full GC (A/B runs)
    const compact = process.env.DFLOW_IDLE_GC_COMPACT !== '0'
    // after each of its full GCs, glibc's free pages go back to the kernel (node/util/malloc-trim.ts);
    // DFLOW_NO_MALLOC_TRIM=1 leaves them with the process (A/B runs)
    const mallocTrim = new MallocTrim({ log: peer.logger.forComponent('dflow:malloc-trim') })
    const afterGc = process.env.DFLOW_NO_MALLOC_TRIM === '1' ? undefined : () => { mallocTrim.trim() }
    const idleGc = new IdleGc(process.env.DFLOW_NO_IDLE_GC === '1' ? { gc: () => {}, log } : { log, compact, afterGc })
    // how many full GCs it ran and when the last one was: a bench can tell a peer at rest from one that has not
    // collected yet (npm run bench:soak)
    const { Counter, Gauge } = await import('prom-client')
    const registers = [observability.metrics.registry]
    // eslint-disable-next-line no-new
    new Counter({ name: 'dflow_idle_gc_runs_total', help: 'Full GCs run by the peer once quiet (node/util/idle-gc.ts)', registers, collect () { this.reset(); this.inc(idleGc.runs) } })
    // eslint-disable-next-line no-new
    new Gauge({ name: 'dflow_idle_gc_last_run_timestamp_seconds', help: 'When the last of them ran (Unix time; 0 before the first)', registers, collect () { this.set(idleGc.lastRunAt / 1000) } })
    // eslint-disable-next-line no-new
    new Counter({ name: 'dflow_malloc_trim_runs_total', help: 'glibc malloc_trim calls after the idle GC (node/util/malloc-trim.ts)', registers, collect () { this.reset(); this.inc(mallocTrim.runs) } })
    // eslint-disable-next-line no-new
    new Counter({ name: 'dflow_malloc_trim_released_bytes_total', help: 'RSS the malloc_trim calls gave back', registers, collect () { this.reset(); this.inc(mallocTrim.releasedBytes) } })
    // eslint-disable-next-line no-new
    new Counter({ name: 'dflow_malloc_trim_cpu_seconds_total', help: 'CPU time (user + system) the malloc_trim calls took', registers, collect () { this.reset(); this.inc(mallocTrim.cpuSeconds) } })
    const onIdle = (): void => { idleGc.arm() }
    services.scheduler.addEventListener('scheduler:idle', onIdle)
    idleGc.arm()
    announce(peer)
    try {
      await untilSignal(peer)
    } finally {
      services.scheduler.removeEventListener('scheduler:idle', onIdle)
      idleGc.stop()
    }
  })
}

function announce (peer: Peer): void {
  const info: ReadyInfo = {
    peerId: peer.peerId.toString(),
    multiaddrs: peer.libp2p.getMultiaddrs().map(String),
    api: peer.api.url,
    pid: process.pid
  }
  process.stdout.write(`peer ${info.peerId}\n`)
  for (const ma of info.multiaddrs) process.stdout.write(`  listening ${ma}\n`)
  process.stdout.write(`  api ${info.api}\n`)
  process.stdout.write(`${READY_MARKER} ${JSON.stringify(info)}\n`)
}

async function untilSignal (peer: Peer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let stopping = false
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // a second signal means the operator does not want to wait for a clean stop
        process.stderr.write(`${signal} again: exiting now\n`)
        process.exit(130)
      }
      stopping = true
      process.stderr.write(`${signal}: stopping peer\n`)
      peer.stop().then(() => {
        process.stderr.write('peer stopped\n')
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
        resolve()
      }, reject)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
