import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import * as dagCbor from '@ipld/dag-cbor'
import { ApiGuard, loadOrCreateApiToken } from './guard.ts'
import { HttpError, type ApiRequest, type Route } from './types.ts'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export class ApiListenError extends Error {
  static readonly NAME = 'ApiListenError'
  constructor (message: string) {
    super(message)
    this.name = ApiListenError.NAME
  }
}

export interface ApiServerOptions {
  /** @default '127.0.0.1' */
  host?: string
  /** 0 = any free port */
  port: number
  /** @default 8 MiB */
  bodyLimitBytes?: number
  logger: ComponentLogger
  /** the bearer token writes need; read from (or made in) DATA/api.token at start when not given */
  token?: string
  /** where api.token lives; without it (and without `token`) the token is fresh and kept in memory */
  dataDir?: string
}

interface CompiledRoute {
  route: Route
  segments: string[]
}

/** A small JSON router over node:http; handlers never take the peer down. */
export class ApiServer {
  private readonly host: string
  private readonly port: number
  private readonly bodyLimit: number
  private readonly log: Logger
  private readonly routes: CompiledRoute[] = []
  private server?: Server
  private boundPort = 0
  private guard?: ApiGuard
  private apiToken?: string
  private readonly dataDir?: string

  constructor (opts: ApiServerOptions) {
    this.host = opts.host ?? '127.0.0.1'
    this.port = opts.port
    this.bodyLimit = opts.bodyLimitBytes ?? 8 * 1024 * 1024
    this.log = opts.logger.forComponent('dflow:api')
    this.apiToken = opts.token
    this.dataDir = opts.dataDir
  }

  /** The bearer token of this API (known once started). */
  get token (): string {
    if (this.apiToken === undefined) throw new Error('ApiServer not started')
    return this.apiToken
  }

  addRoutes (routes: Route[]): void {
    for (const route of routes) {
      this.routes.push({ route, segments: splitPath(route.path) })
    }
  }

  get url (): string {
    if (this.boundPort === 0) throw new Error('ApiServer not started')
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    return `http://${host}:${this.boundPort}`
  }

  async start (): Promise<void> {
    if (this.server != null) return
    this.apiToken ??= await loadOrCreateApiToken(this.dataDir)
    this.guard = new ApiGuard(this.apiToken, this.host)
    const server = createServer((req, res) => { void this.handle(req, res) })
    server.keepAliveTimeout = 5000
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new ApiListenError(err.code === 'EADDRINUSE'
          ? `API port ${this.port} on ${this.host} is already in use`
          : `cannot listen on ${this.host}:${this.port}: ${err.message}`))
      })
      server.listen(this.port, this.host, () => { resolve() })
    })
    const addr = server.address()
    this.boundPort = typeof addr === 'object' && addr != null ? addr.port : this.port
    this.server = server
    this.log('listening on %s', this.url)
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = undefined
    const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
    // close() alone waits for keep-alive and SSE connections to end by themselves
    server.closeAllConnections()
    await closed
  }

  private match (method: string, path: string): { route?: Route, params: Record<string, string>, pathKnown: boolean } {
    const parts = splitPath(path)
    let pathKnown = false
    for (const { route, segments } of this.routes) {
      if (segments.length !== parts.length) continue
      const params: Record<string, string> = {}
      let ok = true
      for (let i = 0; i < segments.length; i++) {
        if (segments[i].startsWith(':')) {
          try { params[segments[i].slice(1)] = decodeURIComponent(parts[i]) } catch { ok = false; break }
        } else if (segments[i] !== parts[i]) { ok = false; break }
      }
      if (!ok) continue
      pathKnown = true
      if (route.method === method) return { route, params, pathKnown }
    }
    return { params: {}, pathKnown }
  }

  private async handle (raw: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (raw.method ?? 'GET').toUpperCase()
    let url: URL
    try {
      url = new URL(raw.url ?? '/', 'http://localhost')
    } catch {
      sendError(res, 400, 'bad request URL')
      return
    }
    const denied = this.guard?.check(raw, method, url.pathname, this.boundPort)
    if (denied !== undefined) {
      sendError(res, denied.status, denied.message)
      raw.resume()
      return
    }
    const { route, params, pathKnown } = this.match(method, url.pathname)
    if (route == null) {
      if (pathKnown) sendError(res, 405, `method ${method} not allowed on ${url.pathname}`)
      else sendError(res, 404, `no route ${method} ${url.pathname}`)
      raw.resume()
      return
    }
    let bodyPromise: Promise<Uint8Array> | undefined
    const body = async (): Promise<Uint8Array> => {
      bodyPromise ??= readBody(raw, this.bodyLimit)
      return bodyPromise
    }
    const req: ApiRequest = {
      method,
      url,
      params,
      body,
      json: async () => {
        const bytes = await body()
        // the guard admitted only these two types for writes
        if (/^application\/cbor\b/i.test(raw.headers['content-type'] ?? '')) {
          try {
            return dagCbor.decode(bytes)
          } catch (err) {
            throw new HttpError(400, `request body is not dag-cbor: ${(err as Error).message}`)
          }
        }
        try {
          return JSON.parse(new TextDecoder().decode(bytes))
        } catch (err) {
          throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`)
        }
      },
      raw
    }
    try {
      const result = await route.handler(req, res)
      if (result === undefined) {
        if (!res.headersSent && !res.writableEnded) sendJson(res, 204, undefined)
        return
      }
      sendJson(res, 200, result)
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500
      if (status >= 500) this.log.error('%s %s failed: %e', method, url.pathname, err)
      if (res.headersSent) { res.destroy(); return }
      sendError(res, status, (err as Error)?.message ?? String(err))
    }
  }
}

function splitPath (path: string): string[] {
  return path.split('/').filter(s => s !== '')
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  if (value === undefined) {
    res.writeHead(status).end()
    return
  }
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function sendError (res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { error: { status, message } })
}

async function readBody (raw: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(raw.headers['content-length'] ?? NaN)
  if (Number.isFinite(declared) && declared > limit) {
    raw.resume()
    throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      raw.resume()
      throw new HttpError(413, `request body exceeds the limit of ${limit} bytes`)
    }
    chunks.push(chunk)
  }
  return new Uint8Array(Buffer.concat(chunks))
}
