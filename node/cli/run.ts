import { Option, type Command } from 'commander'
import { EmbeddedPeer } from '../engine/embedded.ts'
import { WorkflowValidationError } from '../workflow/index.ts'
import { UsageError } from './common.ts'
import { inputOptionParser, parseInputs } from './inputs.ts'
import { renderView, runJson } from './render.ts'

interface RunOptions { input?: string[], bytes?: string[], mode: 'dataflow' | 'control', json?: boolean, slots?: string }

export function registerRunCommand (program: Command): void {
  program.command('run')
    .description('run a workflow on one embedded peer (no network needed)')
    .argument('<workflow>', 'the workflow file (YAML)')
    .option('--input <NAME=VALUE>', 'an input: JSON when it parses, else a string; NAME=@PATH reads a UTF-8 file', inputOptionParser)
    .option('--bytes <NAME=@PATH>', "an input from a file's bytes (a Uint8Array)", inputOptionParser)
    .addOption(new Option('--mode <mode>', 'dataflow or control').choices(['dataflow', 'control']).default('dataflow'))
    .option('--slots <n>', 'function slots of the embedded peer', '4')
    .option('--json', 'print one JSON object')
    .action(async (file: string, opts: RunOptions) => {
      process.exitCode = await runCommand(file, opts)
    })
}

async function runCommand (file: string, opts: RunOptions): Promise<number> {
  let peer: EmbeddedPeer | undefined
  try {
    const inputs = parseInputs(opts.input, opts.bytes)
    const slots = Number(opts.slots)
    if (!Number.isInteger(slots) || slots < 1) throw new UsageError(`--slots must be a positive integer, got ${JSON.stringify(opts.slots)}`)
    peer = await EmbeddedPeer.create({ slots })
    const view = await peer.run(file, inputs, { mode: opts.mode })
    if (opts.json === true) process.stdout.write(JSON.stringify(runJson(view)) + '\n')
    else process.stdout.write(renderView(view) + '\n')
    return view.status === 'ok' ? 0 : 1
  } catch (err) {
    const invalid = err instanceof WorkflowValidationError || err instanceof UsageError || (err as Error).name === 'SubmitError'
    if (!invalid) throw err
    if (opts.json === true) process.stdout.write(JSON.stringify({ status: 'invalid', error: (err as Error).message }) + '\n')
    else process.stderr.write(`error: ${(err as Error).message}\n`)
    return 2
  } finally {
    await peer?.stop()
  }
}
