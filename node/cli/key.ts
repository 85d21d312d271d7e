import type { Command } from 'commander'
import { createIdentityFile, createSwarmKeyFile, KeyFileError } from '../keys.ts'
import { CliError } from './common.ts'

/** `dflow key swarm FILE` (a private network's pre-shared key) and `dflow key new FILE` (a client identity). */
export function registerKeyCommands (program: Command): void {
  const key = program.command('key').description('make keys: a swarm key for a private network, an identity for a client')
  key.command('swarm')
    .description('write a new swarm key (libp2p pre-shared key): peers started with --swarm-key FILE connect only to each other')
    .argument('<file>')
    .action(async (file: string) => {
      try {
        await createSwarmKeyFile(file)
      } catch (err) {
        if (err instanceof KeyFileError) throw new CliError(err.message)
        throw err
      }
      process.stderr.write(`wrote swarm key ${file} (mode 0600); copy it to every machine of the network\n`)
    })
  key.command('new')
    .description('write a new Ed25519 identity and print its public id (list it in the peers\' --authorized-submitters file)')
    .argument('<file>')
    .action(async (file: string) => {
      let id: string
      try {
        id = await createIdentityFile(file)
      } catch (err) {
        if (err instanceof KeyFileError) throw new CliError(err.message)
        throw err
      }
      process.stdout.write(`${id}\n`)
    })
}
