/**
 * Peers of a testnet run from the CLI's esbuild bundle (bin/cli-bundle.mjs) instead of through tsx's loader: the
 * loader keeps a second V8 isolate (Node runs module hooks on their own thread) and the transformed sources alive
 * for the life of the process, about 30-55 MiB of RSS per peer at rest. The packages are bundled too: loading the
 * ~1000 files of node_modules one by one (resolution, stat, read, compile of each) was most of a peer's start-up,
 * 1.2-1.4 s of CPU against 0.5 s from one file, and 32 peers starting at once on 2 cores queue behind each other's;
 * it also leaves ~15 MiB less RSS (module records, source strings, resolution caches). The launcher makes sure the
 * bundle is fresh once per process and names it to its peers (BUNDLE_ENV), so 32 peers starting at once neither
 * build nor check it. Set DFLOW_NO_BUNDLE=1 to run peers through tsx.
 */
import { asciiOnly, cliBundle } from '../bin/cli-bundle.mjs'

export { asciiOnly }

/** the environment variable bin/dflow.js reads: run `dflow peer` from this bundle */
export const BUNDLE_ENV = 'DFLOW_PEER_BUNDLE'

let built: Promise<string | undefined> | undefined

/** The bundle file for peer processes, or undefined (then they load the TypeScript through tsx). */
export async function peerBundle (log: (msg: string) => void = msg => { process.stderr.write(msg + '\n') }): Promise<string | undefined> {
  built ??= cliBundle(err => { log(`cannot bundle the peer (${err.message}); peers run through tsx`) })
  return built
}
