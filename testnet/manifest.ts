import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface ManifestPeer {
  index: number
  peerId: string
  /** with /p2p/<peerId> */
  multiaddrs: string[]
  /** http://127.0.0.1:PORT */
  api: string
  /** the peer's own Node process */
  pid: number
  dataDir: string
  log: string
}

export interface Manifest {
  status: 'up' | 'down'
  /** the peer setting flags passed to every peer */
  flags: string[]
  peers: ManifestPeer[]
}

export const MANIFEST_FILE = 'manifest.json'

export class ManifestError extends Error {
  static readonly NAME = 'ManifestError'
  constructor (message: string) {
    super(message)
    this.name = ManifestError.NAME
  }
}

export function manifestPath (dir: string): string {
  return join(dir, MANIFEST_FILE)
}

/** The manifest of DIR, or undefined when DIR holds none. */
export async function readManifest (dir: string): Promise<Manifest | undefined> {
  let text: string
  try {
    text = await readFile(manifestPath(dir), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ManifestError(`cannot read ${manifestPath(dir)}: ${(err as Error).message}`)
  }
  let m: Manifest
  try {
    m = JSON.parse(text) as Manifest
  } catch (err) {
    throw new ManifestError(`${manifestPath(dir)} is not valid JSON: ${(err as Error).message}`)
  }
  if (!Array.isArray(m?.peers)) throw new ManifestError(`${manifestPath(dir)} has no "peers" list`)
  return m
}

export async function requireManifest (dir: string): Promise<Manifest> {
  const m = await readManifest(dir)
  if (m == null) throw new ManifestError(`no testnet in ${dir} (${MANIFEST_FILE} not found); start one with: dflow testnet up --peers N --dir ${dir}`)
  return m
}

/** Write-then-rename: a reader never sees half a manifest. */
export async function writeManifest (dir: string, manifest: Manifest): Promise<void> {
  const file = manifestPath(dir)
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n')
  await rename(tmp, file)
}
