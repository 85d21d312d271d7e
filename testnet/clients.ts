import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { API_TOKEN_FILE } from '../node/api/guard.ts'
import { DflowClient, type ClientOptions } from '../node/client.ts'
import { CLIENT_KEY_FILE, loadOrCreateIdentity } from '../node/keys.ts'
import type { ManifestPeer } from './manifest.ts'
import type { PrivateKey } from '@libp2p/interface'

/** The API token a peer wrote to its data dir at its first start (undefined before). */
export function readApiToken (dataDir: string): string | undefined {
  try {
    const token = readFileSync(join(dataDir, API_TOKEN_FILE), 'utf8').trim()
    return token === '' ? undefined : token
  } catch {
    return undefined
  }
}

/** Headers for a raw fetch of a testnet peer's API: its bearer token (reads off loopback need it too). */
export function apiHeaders (peer: Pick<ManifestPeer, 'dataDir'>): Record<string, string> {
  const token = readApiToken(peer.dataDir)
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}

/** A client of one testnet peer: its token, and the testnet's client identity (DIR/client.key) to sign with. */
export async function testnetClient (dir: string, peer: ManifestPeer, opts: ClientOptions = {}): Promise<DflowClient> {
  return new DflowClient(peer.api, { token: readApiToken(peer.dataDir), identity: await loadOrCreateIdentity(join(dir, CLIENT_KEY_FILE)), ...opts })
}

/** Clients of every peer of a testnet, in manifest order. */
export async function testnetClients (dir: string, peers: ManifestPeer[], opts: ClientOptions = {}): Promise<DflowClient[]> {
  const identity = await loadOrCreateIdentity(join(dir, CLIENT_KEY_FILE))
  return peers.map(p => new DflowClient(p.api, { token: readApiToken(p.dataDir), identity, ...opts }))
}

/**
 * Credentials of the testnet peers this process started or opened, by API URL, so chaos, bench and the demo,
 * which pass API URLs around, can make authorized clients: `new DflowClient(api, credentialsFor(api))`.
 */
const credentials = new Map<string, { token?: string, identity?: PrivateKey }>()

/** Records the token and client identity of each peer (call once the peers have started: the token exists then). */
export async function registerCredentials (dir: string, peers: ManifestPeer[]): Promise<void> {
  const identity = await loadOrCreateIdentity(join(dir, CLIENT_KEY_FILE))
  for (const p of peers) credentials.set(p.api.replace(/\/$/, ''), { token: readApiToken(p.dataDir), identity })
}

export function credentialsFor (api: string): { token?: string, identity?: PrivateKey } {
  return credentials.get(api.replace(/\/$/, '')) ?? {}
}

/** Authorization header for a raw fetch of a registered peer's API. */
export function authHeaderFor (api: string): Record<string, string> {
  const token = credentialsFor(api).token
  return token === undefined ? {} : { authorization: `Bearer ${token}` }
}
