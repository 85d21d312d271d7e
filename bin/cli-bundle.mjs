// One esbuild bundle of the CLI (node/cli/main.ts and everything it imports, packages included), cached next to
// node_modules and rebuilt when a file it was built from changes. Plain JavaScript, because bin/dflow.js must be
// able to use it before any TypeScript loader runs.
//
// Why: through tsx, every `dflow` command loads ~1000 files of node_modules one by one and transforms ~300 of
// ours, about 1 s before the command does anything (`dflow --version` 1.05 s on a 2-core machine, 0.31 s from the
// bundle). Peers of a testnet run from the same bundle (testnet/bundle.ts), which also leaves tsx's loader thread
// and transformed sources out of a long-lived process.
//
// Freshness: the manifest records size and mtime of every project file the bundle was built from (esbuild's
// metafile), of node_modules/.package-lock.json (npm rewrites it on every install) and of this file. A start
// stats them (a few ms) and rebuilds (~1 s) if any differs; DFLOW_NO_BUNDLE=1 skips the bundle altogether.
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const CACHE = join(ROOT, 'node_modules', '.cache', 'dflow')
const MANIFEST = join(CACHE, 'cli.json')
const SELF = 'bin/cli-bundle.mjs'
/** stamps that invalidate every bundle: the installed packages and this builder */
const ALWAYS = ['node_modules/.package-lock.json', 'package.json', SELF]
/**
 * Left external: esbuild and koffi find their native binaries relative to their own files, and tsx is a loader;
 * none runs in a command's start-up (esbuild is imported when a function is first bundled; koffi is required at
 * the first malloc_trim, node/util/malloc-trim.ts).
 */
const EXTERNAL = ['esbuild', 'koffi', 'tsx']
/** bundles no manifest names are removed once this old (a process that read an older manifest may still load one) */
const STALE_MS = 60 * 60_000

/**
 * The text with every non-ASCII character written as a \u escape. V8 keeps a script's whole source alive (lazy
 * compilation, Function.prototype.toString), as a one-byte string only if every character fits in Latin-1: esbuild
 * escapes non-ASCII in strings, regexps and identifiers, but keeps comments as they are, and a dozen characters
 * such as '⋅' or '—' in the comments of bundled packages made the 4.3 M-character source a two-byte string,
 * 8.1 MiB of every peer's heap instead of 4.1. What is left to escape is in comments, where an escape reads the
 * same; in a string, regexp or identifier it would mean the same character.
 * @param {string} text
 */
export function asciiOnly (text) {
  return text.replace(/[^\x00-\x7f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** @param {string} rel @returns {[string, number, number] | undefined} */
function stamp (rel) {
  try {
    const s = statSync(join(ROOT, rel))
    return [rel, s.mtimeMs, s.size]
  } catch {
    return undefined
  }
}

/** The bundle the manifest names, if every file it was built from is as it was; otherwise undefined. */
export function freshCliBundle () {
  try {
    const m = JSON.parse(readFileSync(MANIFEST, 'utf8'))
    if (typeof m?.bundle !== 'string' || !Array.isArray(m.inputs)) return undefined
    for (const [rel, mtimeMs, size] of m.inputs) {
      const now = stamp(rel)
      if (now === undefined || now[1] !== mtimeMs || now[2] !== size) return undefined
    }
    const file = join(CACHE, m.bundle)
    statSync(file)
    return file
  } catch {
    return undefined
  }
}

/** Builds the bundle and its manifest; returns the bundle's path. Throws what esbuild or the file system throws. */
export async function buildCliBundle () {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: [join(ROOT, 'node/cli/main.ts')],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    metafile: true,
    // CommonJS packages in an ESM bundle call require() for Node's built-ins and the external packages
    // (spelled in two parts: the plugin below rewrites that expression in this very file)
    banner: { js: `import { createRequire as __dflowRequire } from 'node:module'; const require = __dflowRequire(${'import.meta'}.url);` },
    write: false,
    logLevel: 'silent',
    plugins: [{
      name: 'keep-import-meta-url',
      setup (b) {
        // every module of ours keeps its own location: paths built from import.meta.url (worker entry, schema,
        // package.json, this file's ROOT) must not move to the bundle's
        b.onLoad({ filter: /\.[cm]?[tj]s$/ }, async args => {
          if (args.path.includes('/node_modules/')) return undefined
          return {
            contents: (await readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
            loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js'
          }
        })
      }
    }]
  })
  const text = asciiOnly(result.outputFiles[0].text)
  const name = `cli-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.mjs`
  const ours = Object.keys(result.metafile.inputs).filter(p => !p.startsWith('node_modules/') && !p.startsWith('/'))
  const inputs = [...new Set([...ours, ...ALWAYS])].map(stamp).filter(s => s !== undefined)
  mkdirSync(CACHE, { recursive: true })
  const file = join(CACHE, name)
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, text)
  renameSync(tmp, file)
  writeFileSync(`${MANIFEST}.${process.pid}.tmp`, JSON.stringify({ bundle: name, inputs }))
  renameSync(`${MANIFEST}.${process.pid}.tmp`, MANIFEST)
  prune(name)
  return file
}

/** @param {string} keep */
function prune (keep) {
  try {
    for (const f of readdirSync(CACHE)) {
      if (f === keep || !/^(cli|peer)-[0-9a-f]+\.mjs$/.test(f)) continue
      const p = join(CACHE, f)
      if (Date.now() - statSync(p).mtimeMs > STALE_MS) unlinkSync(p)
    }
  } catch {}
}

/**
 * The bundle to run the CLI from: the cached one if fresh, else a new build. Undefined when DFLOW_NO_BUNDLE=1 or
 * the build failed (then `onError` hears why and the caller loads the TypeScript through tsx).
 * @param {(err: Error) => void} [onError]
 */
export async function cliBundle (onError) {
  if (process.env.DFLOW_NO_BUNDLE === '1') return undefined
  const fresh = freshCliBundle()
  if (fresh !== undefined) return fresh
  try {
    return await buildCliBundle()
  } catch (err) {
    onError?.(/** @type {Error} */ (err))
    return undefined
  }
}
