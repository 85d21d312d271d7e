/**
 * `dflow import wfformat TRACE.json --out DIR [--time-scale F] [--size-scale F] [--name NAME]`: a WfCommons trace
 * (WfFormat 1.0-1.4) -> a self-contained dflow workflow of synthetic steps (functions/benchmarks/wfformat/).
 */
import type { Command } from 'commander'
import { WFFORMAT_DEFAULT_SCALES, workflowNameOf } from '../../functions/benchmarks/wfformat/plan.ts'
import { describeImport, importWfFormat } from '../../functions/benchmarks/wfformat/write.ts'
import { CliError, UsageError } from './common.ts'

interface ImportFlags { out: string, timeScale: string, sizeScale: string, name?: string }

function scale (flag: string, text: string): number {
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} ${JSON.stringify(text)}: expected a number > 0`)
  return n
}

export function registerImportCommand (program: Command): void {
  const imp = program.command('import').description('turn workflows of other systems into dflow workflows')
  imp.command('wfformat')
    .description('a WfCommons trace (WfFormat JSON, schema 1.0-1.4) -> DIR/<name>.yaml of synthetic steps, with the code it needs next to it')
    .argument('<trace>', 'the WfFormat JSON file')
    .requiredOption('--out <dir>', 'directory to write into (created if missing)')
    .option('--time-scale <f>', 'runtime scale: a task of runtimeInSeconds s runs s x 1000 x f ms', String(WFFORMAT_DEFAULT_SCALES.timeScale))
    .option('--size-scale <f>', 'data scale: a file of sizeInBytes b becomes b x f bytes', String(WFFORMAT_DEFAULT_SCALES.sizeScale))
    .option('--name <name>', 'workflow name (default: from the file name), made [a-z0-9-]+')
    .action((trace: string, flags: ImportFlags) => {
      const timeScale = scale('time-scale', flags.timeScale)
      const sizeScale = scale('size-scale', flags.sizeScale)
      if (flags.name !== undefined && workflowNameOf(flags.name) !== flags.name) process.stderr.write(`note: --name ${JSON.stringify(flags.name)} written as "${workflowNameOf(flags.name)}"\n`)
      let result
      try {
        result = importWfFormat(trace, flags.out, { timeScale, sizeScale, ...(flags.name !== undefined ? { name: flags.name } : {}) })
      } catch (err) {
        if ((err as Error).name === 'WfFormatError') throw new CliError((err as Error).message, 1)
        throw err
      }
      process.stdout.write(describeImport(result, { timeScale, sizeScale }) + '\n')
    })
}
