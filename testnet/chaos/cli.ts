import cliProgress from 'cli-progress'
import { Command } from 'commander'
import { parseDuration, parseFraction } from '../../node/config.ts'
import { parseIndex, UsageError } from '../../node/cli/common.ts'
import { progressReporter } from '../cli.ts'
import { verified, type ChaosProgress } from './harness.ts'
import { partitionSupport, NetnsCluster } from './netns.ts'
import { ChaosPlanError, describePlan } from './plan.ts'
import { formatReport } from './report.ts'
import { chaos } from './run.ts'
import { parseWorkflowList, UnknownChaosWorkflowError } from './workload.ts'

/** Progress on stderr: a bar on a terminal, plain lines otherwise (each fault, and every 10% of requests). */
export function chaosProgress (stream: NodeJS.WriteStream = process.stderr): { update: (p: ChaosProgress) => void, stop: () => void } {
  if (stream.isTTY === true) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: 'chaos [{bar}] {value}/{total} done | {inFlight} in flight | {faults} faults {event}',
      clearOnComplete: true,
      hideCursor: true
    }, cliProgress.Presets.shades_classic)
    let started = false
    return {
      update: p => {
        if (!started) { bar.start(p.total, p.finished, { inFlight: p.inFlight, faults: p.faults, event: '' }); started = true }
        bar.update(p.finished, { inFlight: p.inFlight, faults: p.faults, ...(p.event != null ? { event: `| ${p.event}` } : {}) })
      },
      stop: () => { if (started) bar.stop() }
    }
  }
  let lastStep = -1
  return {
    update: p => {
      const t = new Date().toISOString().slice(11, 19)
      if (p.event != null) stream.write(`${t} ${p.event} (${p.finished}/${p.total} done, ${p.inFlight} in flight)\n`)
      const step = Math.floor((10 * p.finished) / Math.max(1, p.total))
      if (step !== lastStep && p.event == null) {
        lastStep = step
        stream.write(`${t} ${p.finished}/${p.total} requests done, ${p.submitted} submitted, ${p.inFlight} in flight\n`)
      }
    },
    stop: () => {}
  }
}

function addChaos (testnet: Command): void {
  testnet.command('chaos')
    .description('send requests from random peers while killing peers (or cutting them off), then check every result against a clean run')
    .option('--peers <n>', 'peers in the testnet it starts', '6')
    .option('--requests <r>', 'number of requests', '30')
    .option('--workflows <list>', 'comma-separated example workflows, or "mixed" (all of them)', 'mixed')
    .option('--kill <k>', 'peers to SIGKILL (or cut off, with --partition) during the load', '2')
    .option('--restart', 'restart each killed peer (heal each cut) a few seconds later')
    .option('--partition', 'cut peers off the network instead of killing them (needs root and iproute2)')
    .option('--seed <s>', 'seed of the workload and the kill plan (default: random, printed)')
    .option('--dir <dir>', "use DIR's running testnet (left running), or start one there")
    .option('--concurrency <c>', 'requests in flight at once', '4')
    .option('--timeout <duration>', 'a request not finished this long after its submission is lost', '60s')
    .option('--drop-events <p>', 'each peer drops this fraction (0-1) of the readiness events it receives, seeded (lost messages, not dead peers)', '0')
    .option('--keep', 'keep the temp testnet dir (peer logs) even when everything verified')
    .option('--json', 'print the report as one JSON object')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      let workflows: string[]
      let requestTimeoutMs: number
      let dropEvents: number
      try {
        workflows = parseWorkflowList(opts.workflows as string)
        requestTimeoutMs = parseDuration(opts.timeout, '--timeout')
        dropEvents = parseFraction(opts.dropEvents as string, '--drop-events')
      } catch (err) {
        if (err instanceof UnknownChaosWorkflowError || (err as Error).name === 'ConfigError') throw new UsageError((err as Error).message)
        throw err
      }
      const seed = (opts.seed as string | undefined) ?? String(Math.floor(Math.random() * 2 ** 31))
      const partition = opts.partition === true
      if (partition) {
        const why = partitionSupport()
        if (why !== undefined) {
          process.stderr.write(`--partition ${why}: skipped (nothing was run)\n`)
          if (opts.json === true) process.stdout.write(JSON.stringify({ skipped: true, reason: `--partition ${why}` }) + '\n')
          return
        }
      }
      const ac = new AbortController()
      const onSignal = (sig: NodeJS.Signals): void => { process.stderr.write(`chaos: ${sig}, stopping\n`); ac.abort(new Error(`interrupted (${sig})`)) }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      const bar = chaosProgress()
      try {
        const run = await chaos({
          peers: parseIndex(opts.peers as string, '--peers'),
          requests: parseIndex(opts.requests as string, '--requests'),
          kill: parseIndex(opts.kill as string, '--kill'),
          concurrency: Math.max(1, parseIndex(opts.concurrency as string, '--concurrency')),
          restart: opts.restart === true,
          partition,
          workflows,
          seed,
          dir: opts.dir as string | undefined,
          keep: opts.keep === true,
          requestTimeoutMs,
          dropEvents,
          signal: ac.signal,
          onPlan: plan => { process.stderr.write(describePlan(plan) + '\n') },
          onTestnet: progressReporter(),
          onProgress: bar.update,
          openCluster: partition ? async (peers, flags) => NetnsCluster.start({ peers, dir: opts.dir as string | undefined, flags, onProgress: progressReporter() }) : undefined
        })
        bar.stop()
        if (opts.json === true) process.stdout.write(JSON.stringify(run.report) + '\n')
        else process.stdout.write(formatReport(run, { dir: run.dir, kept: run.kept }))
        if (opts.json === true) process.stderr.write(formatReport(run, { dir: run.dir, kept: run.kept }))
        if (!verified(run.report)) process.exitCode = 1
      } catch (err) {
        bar.stop()
        if (err instanceof ChaosPlanError) throw new UsageError(err.message)
        if (ac.signal.aborted) { process.exitCode = 130; process.stderr.write('chaos: interrupted; the testnet it started was stopped\n'); return }
        throw err
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}

/**
 * Adds `dflow testnet chaos` to the program (to its `testnet` command, which registerTestnetCommands
 * creates; register this after it).
 */
export function registerChaosCommand (program: Command): void {
  let testnet = program.commands.find(c => c.name() === 'testnet')
  testnet ??= program.command('testnet').description('a local testnet of peer processes on 127.0.0.1')
  addChaos(testnet)
}
