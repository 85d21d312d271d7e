import '../util/polyfill.ts'
import { Command, CommanderError } from 'commander'
import { VERSION } from '../api/health.ts'
import { registerTestnetCommands } from '../../testnet/cli.ts'
import { registerChaosCommand } from '../../testnet/chaos/cli.ts'
import { registerDemoCommand } from './demo.ts'
import { registerPeerCommand } from './peer.ts'
import { registerRunCommand } from './run.ts'
import { registerBenchCommand } from './bench.ts'
import { registerImportCommand } from './import.ts'
import { registerClientCommands } from './client-commands.ts'
import { registerKeyCommands } from './key.ts'

/** A module that adds commands to the `dflow` program. */
export type CommandRegistrar = (program: Command) => void

const registrars: CommandRegistrar[] = [registerPeerCommand, registerTestnetCommands, registerChaosCommand, registerDemoCommand, registerRunCommand, registerClientCommands, registerBenchCommand, registerKeyCommands, registerImportCommand]

/** Lets other modules add commands (call before main()); the built-in ones are registered by default. */
export function registerCommands (registrar: CommandRegistrar): void {
  registrars.push(registrar)
}

export function buildProgram (): Command {
  const program = new Command('dflow')
    .description('dflow: a decentralized, dataflow-based serverless workflow runtime on libp2p')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
  // subcommands inherit exitOverride only when set before they are added
  for (const register of registrars) register(program)
  for (const cmd of program.commands) cmd.exitOverride()
  return program
}

/** Runs the CLI and exits the process: 0 on success, 1 on failure, 2 on usage errors. */
export async function main (argv: string[]): Promise<never> {
  const program = buildProgram()
  let code = 0
  try {
    await program.parseAsync(argv, { from: 'user' })
    code = typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (or the help)
      code = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2
    } else {
      process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`)
      const exitCode = (err as { exitCode?: unknown })?.exitCode
      code = typeof exitCode === 'number' ? exitCode : 1
    }
  }
  // flush stdout before exiting: a piped `--json` result must not be cut short
  await new Promise<void>(resolve => { process.stdout.write('', () => { resolve() }) })
  process.exit(code)
}
