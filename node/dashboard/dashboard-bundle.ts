import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from '@libp2p/interface'

const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), 'ui')
const ENTRY = join(UI_DIR, 'dashboard-app.ts')
/** the libraries bundled into the page: their versions are part of the content hash */
const LIBS = ['preact', 'htm', 'elkjs', 'esbuild']

export class DashboardBundleError extends Error {
  static readonly NAME = 'DashboardBundleError'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = DashboardBundleError.NAME
  }
}

export interface DashboardBundle {
  /** sha-256 of the sources and library versions (hex, 16 chars): names the cached file, serves as ETag */
  hash: string
  code: Uint8Array
}

function cacheRoot (): string {
  if (process.env.DFLOW_CACHE_DIR !== undefined && process.env.DFLOW_CACHE_DIR !== '') return join(process.env.DFLOW_CACHE_DIR, 'dashboard')
  const xdg = process.env.XDG_CACHE_HOME
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'dflow', 'dashboard')
}

/** Content hash of the page: every UI source file and the versions of the bundled libraries. */
export async function dashboardHash (): Promise<string> {
  const h = createHash('sha256')
  const files = (await readdir(UI_DIR)).filter(f => /\.(ts|css|html)$/.test(f) && !f.endsWith('.d.ts')).sort()
  for (const f of files) {
    h.update(f).update('\0').update(await readFile(join(UI_DIR, f))).update('\0')
  }
  for (const lib of LIBS) h.update(`${lib}@${await versionOf(lib)}\0`)
  return h.digest('hex').slice(0, 16)
}

/** A library's version, from the package.json above its entry point (some packages do not export package.json). */
async function versionOf (lib: string): Promise<string> {
  const require = createRequire(import.meta.url)
  let dir = dirname(require.resolve(lib))
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === lib && pkg.version !== undefined) return pkg.version
    } catch {}
    const up = dirname(dir)
    if (up === dir) throw new DashboardBundleError(`cannot find the version of ${lib}`)
    dir = up
  }
}

async function build (): Promise<Uint8Array> {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent'
  })
  return result.outputFiles[0].contents
}

/**
 * Bundles the page at most once per content hash on this machine: at the first request any peer gets (not at
 * peer start: 32 peers start on 2 cores), written to the cache directory (DFLOW_CACHE_DIR, else
 * XDG_CACHE_HOME or ~/.cache, /dflow/dashboard) under the hash; other peers and later runs read that file.
 */
export class DashboardBundler {
  private pending?: Promise<DashboardBundle>

  constructor (private readonly log: Logger) {}

  async get (): Promise<DashboardBundle> {
    this.pending ??= this.load()
    this.pending.catch(() => { this.pending = undefined })
    return this.pending
  }

  private async load (): Promise<DashboardBundle> {
    const hash = await dashboardHash()
    for (const root of [cacheRoot(), join(tmpdir(), 'dflow-cache', 'dashboard')]) {
      try { return { hash, code: new Uint8Array(await readFile(join(root, `${hash}.js`))) } } catch {}
    }
    const t0 = Date.now()
    let code: Uint8Array
    try {
      code = await build()
    } catch (err) {
      throw new DashboardBundleError(`bundling the dashboard failed: ${(err as Error).message}`, { cause: err })
    }
    this.log('dashboard bundled in %d ms (%d bytes, hash %s)', Date.now() - t0, code.byteLength, hash)
    for (const root of [cacheRoot(), join(tmpdir(), 'dflow-cache', 'dashboard')]) {
      try {
        await mkdir(root, { recursive: true })
        // write then rename: peers bundling at the same moment never read a half-written file
        const tmp = join(root, `${hash}.${process.pid}.${Date.now()}.tmp`)
        await writeFile(tmp, code)
        await rename(tmp, join(root, `${hash}.js`))
        break
      } catch (err) {
        this.log('cannot cache the dashboard in %s: %s', root, (err as Error).message)
      }
    }
    return { hash, code }
  }
}
