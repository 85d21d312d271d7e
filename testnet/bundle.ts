/**
 * Peers of a testnet run from one esbuild bundle of the CLI instead of through tsx's loader: the loader keeps a
 * second V8 isolate (Node runs module hooks on their own thread) and the transformed sources alive for the life
 * of the process, about 30-55 MiB of RSS per peer at rest. The packages are bundled too: loading the ~1000
 * files of node_modules one by one (resolution, stat, read, compile of each) was most of a peer's start-up,
 * 1.2-1.4 s of CPU against 0.5 s from one file, and 32 peers starting at once on 2 cores queue behind each
 * other's; it also leaves ~15 MiB less RSS (module records, source strings, resolution caches). The bundle is
 * built once per `testnet up`, keyed by its content, next to node_modules (so the packages it leaves external
 * resolve as before). Set DFLOW_NO_BUNDLE=1 to run peers through tsx.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
/** the environment variable bin/dflow.js reads: run `dflow peer` from this bundle */
export const BUNDLE_ENV = 'DFLOW_PEER_BUNDLE'
/**
 * Left external: esbuild and koffi find their native binaries relative to their own files, and tsx is a loader;
 * none runs in a peer's start-up (esbuild is imported, its service started on the first function bundled; koffi
 * is required at the first malloc_trim, node/util/malloc-trim.ts).
 */
const EXTERNAL = ['esbuild', 'koffi', 'tsx']

let built: Promise<string | undefined> | undefined

async function build (log: (msg: string) => void): Promise<string | undefined> {
  if (process.env.DFLOW_NO_BUNDLE === '1') return undefined
  try {
    const esbuild = await import('esbuild')
    const result = await esbuild.build({
      entryPoints: [join(ROOT, 'node/cli/main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: EXTERNAL,
      // CommonJS packages in an ESM bundle call require() for Node's built-ins and the external packages
      // (spelled in two parts: the plugin below rewrites that expression in this very file)
      banner: { js: `import { createRequire as __dflowRequire } from 'node:module'; const require = __dflowRequire(${'import.meta'}.url);` },
      write: false,
      logLevel: 'silent',
      plugins: [{
        name: 'keep-import-meta-url',
        setup (b) {
          // every module keeps its own location: paths built from import.meta.url (worker entry, schema,
          // package.json) must not move to the bundle's
          b.onLoad({ filter: /\.[cm]?ts$/ }, async args => ({
            contents: (await readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
            loader: 'ts'
          }))
        }
      }]
    })
    const text = asciiOnly(result.outputFiles[0].text)
    const dir = join(ROOT, 'node_modules', '.cache', 'dflow')
    const file = join(dir, `peer-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.mjs`)
    const exists = await stat(file).then(() => true, () => false)
    if (!exists) {
      await mkdir(dir, { recursive: true })
      const tmp = `${file}.${process.pid}.tmp`
      await writeFile(tmp, text)
      await (await import('node:fs/promises')).rename(tmp, file)
    }
    return file
  } catch (err) {
    log(`cannot bundle the peer (${(err as Error).message}); peers run through tsx`)
    return undefined
  }
}

/**
 * The bundle with every non-ASCII character written as a \\u escape. V8 keeps a script's whole source alive (lazy
 * compilation, Function.prototype.toString), as a one-byte string only if every character fits in Latin-1: esbuild
 * escapes non-ASCII in strings, regexps and identifiers, but keeps comments as they are, and a dozen characters
 * such as '⋅' or '—' in the comments of bundled packages made the 4.3 M-character source a two-byte string,
 * 8.1 MiB of every peer's heap instead of 4.1. What is left to escape is in comments, where an escape reads the
 * same; in a string, regexp or identifier it would mean the same character.
 */
export function asciiOnly (text: string): string {
  return text.replace(/[^\x00-\x7f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The bundle file for peer processes, or undefined (then they load the TypeScript through tsx). */
export async function peerBundle (log: (msg: string) => void = msg => { process.stderr.write(msg + '\n') }): Promise<string | undefined> {
  built ??= build(log)
  return built
}
