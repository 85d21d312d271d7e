import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import { DashboardBundler } from './dashboard-bundle.ts'
import type { Route } from '../api/types.ts'
import type { Logger } from '@libp2p/interface'
import type { ServerResponse } from 'node:http'

const STYLE = join(dirname(fileURLToPath(import.meta.url)), 'ui', 'style.css')

function escapeAttr (s: string): string {
  return s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

/**
 * The dashboard: `GET /` and `GET /requests/<id>` answer the same page (it routes by its URL), which loads
 * `GET /dashboard/app.js` (bundled once, see dashboard-bundle.ts) and reads the peer's JSON and SSE routes.
 */
export function dashboardRoutes (self: string, log: Logger): Route[] {
  const bundler = new DashboardBundler(log)
  let style: Promise<string> | undefined
  // the bundle is ~1.5 MB (elkjs is most of it), ~0.4 MB gzipped: worth it beyond loopback (a tunnel, a remote browser)
  let gzipped: { hash: string, bytes: Promise<Uint8Array> } | undefined
  const page = async (_req: unknown, res: ServerResponse): Promise<undefined> => {
    style ??= readFile(STYLE, 'utf8')
    const [css, bundle] = await Promise.all([style, bundler.get()])
    const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>dflow · ${escapeAttr(self.slice(-8))}</title><style>${css}</style></head>
<body data-peer="${escapeAttr(self)}"><div id="app"></div><script src="/dashboard/app.js?v=${bundle.hash}"></script></body></html>
`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache' })
    res.end(body)
    return undefined
  }
  return [
    { method: 'GET', path: '/', handler: page },
    { method: 'GET', path: '/requests/:id', handler: page },
    {
      method: 'GET',
      path: '/dashboard/app.js',
      handler: async (req, res) => {
        const { hash, code } = await bundler.get()
        const etag = `"${hash}"`
        if (req.raw.headers['if-none-match'] === etag) { res.writeHead(304, { etag }).end(); return undefined }
        const headers = { 'content-type': 'text/javascript; charset=utf-8', etag, 'cache-control': 'no-cache', vary: 'accept-encoding' }
        if (/\bgzip\b/.test(String(req.raw.headers['accept-encoding'] ?? ''))) {
          if (gzipped?.hash !== hash) gzipped = { hash, bytes: promisify(gzip)(code).then(b => new Uint8Array(b)) }
          const body = await gzipped.bytes
          res.writeHead(200, { ...headers, 'content-encoding': 'gzip', 'content-length': body.byteLength })
          res.end(body)
          return undefined
        }
        res.writeHead(200, { ...headers, 'content-length': code.byteLength })
        res.end(code)
        return undefined
      }
    }
  ]
}
