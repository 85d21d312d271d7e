import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateKey as generatePskInto } from '@libp2p/pnet'
import type { PrivateKey } from '@libp2p/interface'

export const KEY_FILE = 'peer.key'
/** The private network's pre-shared key a testnet makes for its peers (DIR/swarm.key). */
export const SWARM_KEY_FILE = 'swarm.key'
/** The client identity a testnet makes and authorizes (DIR/client.key). */
export const CLIENT_KEY_FILE = 'client.key'

export class KeyFileError extends Error {
  static readonly NAME = 'KeyFileError'
  constructor (message: string) {
    super(message)
    this.name = KeyFileError.NAME
  }
}

/** write-then-rename so a crash never leaves a truncated key behind; keys are 0600 */
async function writeSecret (file: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, bytes, { mode: 0o600 })
  await rename(tmp, file)
}

async function readOptional (file: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyFileError(`cannot read ${file}: ${(err as Error).message}`)
    return undefined
  }
}

function parseIdentity (file: string, bytes: Uint8Array): PrivateKey {
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new KeyFileError(`${file} does not hold a valid private key: ${(err as Error).message}`)
  }
}

/**
 * The peer's Ed25519 key, protobuf-marshalled in DATA/peer.key so a restarted peer keeps its PeerId.
 * Without a data dir the identity is fresh and not persisted.
 */
export async function loadOrCreateKey (dataDir?: string): Promise<PrivateKey> {
  if (dataDir == null) return generateKeyPair('Ed25519')
  return loadOrCreateIdentity(join(dataDir, KEY_FILE))
}

/** An Ed25519 identity file (same format as DATA/peer.key), created when missing. */
export async function loadOrCreateIdentity (file: string): Promise<PrivateKey> {
  const bytes = await readOptional(file)
  if (bytes != null) return parseIdentity(file, bytes)
  const key = await generateKeyPair('Ed25519')
  await writeSecret(file, privateKeyToProtobuf(key))
  return key
}

/** Reads an identity file that must exist (`dflow submit --identity FILE`). */
export async function loadIdentity (file: string): Promise<PrivateKey> {
  const bytes = await readOptional(file)
  if (bytes == null) throw new KeyFileError(`identity file ${file} does not exist (make one with: dflow key new ${file})`)
  return parseIdentity(file, bytes)
}

/** Writes a new identity to `file` (refusing to overwrite one) and answers its public id. */
export async function createIdentityFile (file: string): Promise<string> {
  if (await readOptional(file) != null) throw new KeyFileError(`${file} exists already; remove it first to replace the identity`)
  const key = await generateKeyPair('Ed25519')
  await writeSecret(file, privateKeyToProtobuf(key))
  return identityId(key)
}

/** The public id of an identity: its PeerId string (what --authorized-submitters lists). */
export function identityId (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}

/** A new swarm key in the go-ipfs / libp2p-pnet format (`/key/swarm/psk/1.0.0/`, base16, 32 random bytes). */
export function newSwarmKey (): Uint8Array {
  const bytes = new Uint8Array(95)
  generatePskInto(bytes)
  return bytes
}

/** Writes a new swarm key to `file` (refusing to overwrite one). */
export async function createSwarmKeyFile (file: string): Promise<void> {
  if (await readOptional(file) != null) throw new KeyFileError(`${file} exists already; remove it first to replace the swarm key`)
  await writeSecret(file, newSwarmKey())
}

/** The testnet's swarm key: created on first use, reused afterwards (restarts keep the network). */
export async function loadOrCreateSwarmKey (file: string): Promise<Uint8Array> {
  const bytes = await readOptional(file)
  if (bytes != null) return checkSwarmKey(file, bytes)
  const key = newSwarmKey()
  await writeSecret(file, key)
  return key
}

/** Reads a swarm key file and checks its format (pnet itself only says "invalid psk"). */
export async function loadSwarmKey (file: string): Promise<Uint8Array> {
  const bytes = await readOptional(file)
  if (bytes == null) throw new KeyFileError(`swarm key file ${file} does not exist (make one with: dflow key swarm ${file})`)
  return checkSwarmKey(file, bytes)
}

function checkSwarmKey (file: string, bytes: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new KeyFileError(`${file} is not a swarm key (expected /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits; make one with: dflow key swarm FILE)`)
  }
  // pnet parses the first three lines only; a trailing newline from an editor is fine
  return new TextEncoder().encode(lines.slice(0, 3).join('\n'))
}
