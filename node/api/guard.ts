import { randomBytes, timingSafeEqual } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { hostname, networkInterfaces } from 'node:os'
import { join } from 'node:path'
import type { IncomingMessage } from 'node:http'

/** The API token file in a peer's data dir: one line, mode 0600, made at the first start. */
export const API_TOKEN_FILE = 'api.token'

/** The token of DATA/api.token, created when missing; a fresh in-memory token without a data dir. */
export async function loadOrCreateApiToken (dataDir?: string): Promise<string> {
  const fresh = randomBytes(32).toString('base64url')
  if (dataDir == null) return fresh
  const file = join(dataDir, API_TOKEN_FILE)
  try {
    const token = (await readFile(file, 'utf8')).trim()
    if (token !== '') return token
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await mkdir(dataDir, { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, fresh + '\n', { mode: 0o600 })
  await rename(tmp, file)
  return fresh
}

export function isLoopbackName (host: string): boolean {
  const h = host.toLowerCase()
  return h === 'localhost' || h.startsWith('127.') || h === '::1' || h === '[::1]' || h === '::ffff:127.0.0.1'
}

/** The hostname of a Host header or an origin's host (port and IPv6 brackets removed). */
function hostOnly (host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']') === -1 ? undefined : host.indexOf(']'))
  const colon = host.lastIndexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}

export type Denial = { status: 401 | 403 | 415, message: string } | undefined

/**
 * The API's trust boundary, checked before any handler runs:
 * - Host must name this peer (its API host, one of its interface addresses when bound to all, its hostname)
 *   or a loopback name: a DNS-rebinding page has the attacker's name in Host (403);
 * - an Origin header must be this API's own origin: no web page elsewhere may call it (403);
 * - writes (POST, PUT, DELETE) need `Authorization: Bearer <DATA/api.token>` (401), and so do reads from
 *   outside loopback except GET /v1/health;
 * - a write's body must be application/json or application/cbor (415): neither is a CORS "simple" type, so
 *   a browser must ask first (a preflight this API never grants).
 */
export class ApiGuard {
  private readonly token: Buffer
  constructor (token: string, private readonly host: string) {
    this.token = Buffer.from(token)
  }

  private ownHost (name: string): boolean {
    const h = name.toLowerCase()
    if (isLoopbackName(h) || h === this.host.toLowerCase() || h === hostname().toLowerCase()) return true
    if (this.host === '0.0.0.0' || this.host === '::') {
      return Object.values(networkInterfaces()).some(list => list?.some(a => a.address.toLowerCase() === h) === true)
    }
    return false
  }

  private tokenOk (req: IncomingMessage): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')
    if (m == null) return false
    const given = Buffer.from(m[1])
    return given.byteLength === this.token.byteLength && timingSafeEqual(given, this.token)
  }

  check (req: IncomingMessage, method: string, path: string, port: number): Denial {
    const host = req.headers.host
    if (host === undefined || !this.ownHost(hostOnly(host))) {
      return { status: 403, message: `Host ${JSON.stringify(host ?? '')} is not this peer's address or a loopback name` }
    }
    const origin = req.headers.origin
    if (origin !== undefined) {
      let ok = false
      try {
        const u = new URL(origin)
        ok = u.protocol === 'http:' && this.ownHost(hostOnly(u.host)) && Number(u.port === '' ? 80 : u.port) === port
      } catch {}
      if (!ok) return { status: 403, message: `cross-origin request from ${origin} refused` }
    }
    const write = method !== 'GET' && method !== 'HEAD'
    const remoteLoopback = isLoopbackName(req.socket.remoteAddress ?? '')
    if ((write || (!remoteLoopback && path !== '/v1/health')) && !this.tokenOk(req)) {
      return { status: 401, message: `${write ? 'writes' : 'requests from outside loopback'} need "Authorization: Bearer <token>" with the token in the peer's DATA/${API_TOKEN_FILE}` }
    }
    if (write) {
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
      const hasBody = method !== 'DELETE' || Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined
      if (hasBody && type !== 'application/json' && type !== 'application/cbor') {
        return { status: 415, message: `a ${method} body must be application/json or application/cbor, got ${type === '' ? 'none' : JSON.stringify(type)}` }
      }
    }
    return undefined
  }
}
