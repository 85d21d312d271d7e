/**
 * `dflow bench`: dataflow vs control flow vs central store on the FaaSFlow workflows, on a testnet of its own.
 * The work is in testnet/bench/; this file parses flags, shows progress and writes what was asked.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Option, type Command } from 'commander'
import { parseBenchOptions, type BenchCliFlags } from '../../testnet/bench/options.ts'
import { runBench, type BenchProgress } from '../../testnet/bench/runner.ts'
import { renderText, writeResultsJson } from '../../testnet/bench/report.ts'
import { writeCharts } from '../../testnet/bench/charts.ts'
import { writeDocsReadme } from '../../testnet/bench/docs.ts'
import { progressReporter } from '../../testnet/bench/progress.ts'
import { requireLinkRateSupport } from '../../testnet/bench/netns.ts'
import { CliError, UsageError } from './common.ts'

export function registerBenchCommand (program: Command): void {
  program.command('bench')
    .description('benchmark dataflow vs control flow vs central store on the FaaSFlow workflows (its own testnet)')
    .option('--peers <n>', 'peers in the bench testnet', '4')
    .option('--workflows <list>', 'all | examples | all+examples | comma list of names and WfFormat traces (PATH.json, imported at the bench\'s scales)', 'all')
    .option('--modes <list>', 'comma list of dataflow, control, central', 'dataflow,control,central')
    .option('--requests <n>', 'measured requests per workflow, mode and postAt', '20')
    .option('--warmup <n>', 'discarded warm-up requests per workflow, mode and postAt', '1')
    .option('--rate <perMin>', 'open loop: Poisson arrivals, requests per minute (default: closed loop, one at a time)')
    .option('--seed <n>', 'seed of peer choice, arrivals and request inputs', '1')
    .option('--link-rate <rate>', 'rate limit per link, e.g. 50MB/s (needs root and iproute2: peers run in network namespaces)')
    .option('--dir <dir>', 'testnet directory (default: a temporary one, removed afterwards)')
    .option('--out <dir>', 'write results.json and the SVG charts there')
    .option('--docs <dir>', 'also write README.md (table + charts) there, e.g. docs/benchmarks')
    .option('--json', 'print results as JSON')
    .option('--time-scale <f>', 'runtime scale of the benchmark functions', '0.05')
    .option('--size-scale <f>', 'data size scale of the benchmark functions', '0.01')
    .option('--init-ms <n>', 'start cost of each function instance (ms)', '0')
    .option('--post-at <list>', 'when functions post outputs, fraction of runtime (comma list)', '1,0.5')
    .option('--slots <n>', 'function slots per peer', '4')
    .option('--replicas <n>', 'copies DStore keeps of each value (0: bytes moved are those of execution alone)', '0')
    .option('--idle-instance <duration>', 'passed to the peers as dflow peer --idle-instance: a warm instance idle this long stops (e.g. 2s, for cold starts in an open-loop run)')
    .option('--stem-cells <n>', 'passed to the peers as dflow peer --stem-cells: instance processes booted ahead of need (0: none, for an A/B of cold starts)')
    .option('--modules <list>', 'module layout of the benchmark workflows, comma list: per-workflow (all steps in one module: one warm instance serves any step) or per-step (one module per step, as one function per container: every step pays its own cold start; jobs named <name>/per-step)', 'per-workflow')
    .option('--no-shared-store', 'passed to the peers as dflow peer --no-shared-store: values move over libp2p even between peers of this host (no /dev/shm fast path), to measure what the fast path saves')
    .option('--yardstick <engine>', 'also run the same shapes on a central engine, side by side: dask (needs python3 with distributed)')
    .addOption(new Option('--request-timeout <ms>', 'per request').default('120000').hideHelp())
    .action(async (flags: BenchCliFlags & { out?: string, docs?: string, json?: boolean }) => {
      let opts
      try {
        opts = parseBenchOptions(flags)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
      if (opts.linkRate !== undefined) {
        try { requireLinkRateSupport() } catch (err) { throw new CliError((err as Error).message, 1) }
      }
      const progress = progressReporter(process.stderr)
      // Ctrl-C (or a SIGTERM) stops the run after the current request and still stops the bench's testnet
      const interrupt = new AbortController()
      const onSigint = (): void => { interrupt.abort(new CliError('interrupted', 130)) }
      process.once('SIGINT', onSigint)
      process.once('SIGTERM', onSigint)
      let results
      let samples
      try {
        ({ results, samples } = await runBench({ ...opts, signal: interrupt.signal }, (p: BenchProgress) => { progress.update(p) }))
      } finally {
        process.off('SIGINT', onSigint)
        process.off('SIGTERM', onSigint)
        progress.stop()
      }
      const notes: string[] = []
      let charts: string[] = []
      if (flags.out !== undefined) {
        // every measured request with its step timeline, for looking into a result
        await mkdir(flags.out, { recursive: true })
        await writeFile(join(flags.out, 'samples.json'), JSON.stringify(samples) + '\n')
      }
      for (const dir of [flags.out, flags.docs]) {
        if (dir === undefined) continue
        await writeResultsJson(results, dir)
        try {
          charts = await writeCharts(results, dir)
        } catch (err) {
          notes.push(`charts skipped: ${(err as Error).message}`)
        }
        notes.push(`wrote ${dir}/results.json${charts.length > 0 ? ` and ${charts.join(', ')}` : ''}`)
      }
      if (flags.docs !== undefined) {
        const file = await writeDocsReadme(results, flags.docs, charts, `dflow bench ${process.argv.slice(process.argv.indexOf('bench') + 1).join(' ')}`)
        notes.push(`wrote ${file}`)
      }
      process.stdout.write((flags.json === true ? JSON.stringify(results) : renderText(results)) + '\n')
      for (const n of notes) process.stderr.write(n + '\n')
      if (results.rows.some(r => r.failed > 0)) process.exitCode = 1
    })
}
