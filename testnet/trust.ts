import { readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { CLIENT_KEY_FILE, SWARM_KEY_FILE, identityId, loadOrCreateIdentity, loadOrCreateSwarmKey } from '../node/keys.ts'

/** The file a testnet writes with the ids allowed to submit: its client identity, and any the user listed. */
export const AUTHORIZED_FILE = 'authorized-submitters'

function takeFlag (flags: string[], name: string): { rest: string[], value?: string } {
  const rest: string[] = []
  let value: string | undefined
  for (let i = 0; i < flags.length; i++) {
    if (flags[i] === name && i + 1 < flags.length) { value = flags[++i]; continue }
    if (flags[i].startsWith(`${name}=`)) { value = flags[i].slice(name.length + 1); continue }
    rest.push(flags[i])
  }
  return { rest, value }
}

/**
 * A testnet is a private network with nothing to set up: DIR/swarm.key (unless --swarm-key names one) goes to
 * every peer, DIR/client.key is the identity `dflow submit --dir DIR` signs with, and DIR/authorized-submitters
 * authorizes it (plus the ids of a user's --authorized-submitters file). Returns the flags with both set.
 */
export async function prepareTrust (dir: string, flags: string[]): Promise<string[]> {
  const swarm = takeFlag(flags, '--swarm-key')
  const auth = takeFlag(swarm.rest, '--authorized-submitters')
  const swarmKey = resolve(swarm.value ?? join(dir, SWARM_KEY_FILE))
  await loadOrCreateSwarmKey(swarmKey)
  const client = await loadOrCreateIdentity(join(dir, CLIENT_KEY_FILE))
  let extra = ''
  if (auth.value !== undefined) extra = `\n# from ${auth.value}\n${await readFile(auth.value, 'utf8')}`
  const listFile = join(dir, AUTHORIZED_FILE)
  await writeFile(listFile, `# written by dflow testnet up: the testnet's client identity (${CLIENT_KEY_FILE})\n${identityId(client)}\n${extra}`, { mode: 0o600 })
  return [...auth.rest, '--swarm-key', swarmKey, '--authorized-submitters', listFile]
}
