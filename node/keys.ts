import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

export const KEY_FILE = 'peer.key'

export class KeyFileError extends Error {
  static readonly NAME = 'KeyFileError'
  constructor (message: string) {
    super(message)
    this.name = KeyFileError.NAME
  }
}

/**
 * The peer's Ed25519 key, protobuf-marshalled in DATA/peer.key so a restarted peer keeps its PeerId.
 * Without a data dir the identity is fresh and not persisted.
 */
export async function loadOrCreateKey (dataDir?: string): Promise<PrivateKey> {
  if (dataDir == null) return generateKeyPair('Ed25519')
  const file = join(dataDir, KEY_FILE)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyFileError(`cannot read ${file}: ${(err as Error).message}`)
  }
  if (bytes != null) {
    try {
      return privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new KeyFileError(`${file} does not hold a valid private key: ${(err as Error).message}`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true })
  // write-then-rename so a crash never leaves a truncated key behind
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, file)
  return key
}
