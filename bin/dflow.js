#!/usr/bin/env node
// The `dflow` command. It runs from one esbuild bundle of the CLI, cached next to node_modules and rebuilt when a
// source changes (bin/cli-bundle.mjs): loading the TypeScript and ~1000 package files through tsx cost ~1 s per
// command. Without a bundle (DFLOW_NO_BUNDLE=1, or the build failed) the sources load in-process through tsx's
// loader. Either way the pid of this process is the peer's own Node process (no wrapper child). A testnet launcher
// names the bundle its peers run (DFLOW_PEER_BUNDLE, see testnet/bundle.ts), so they need not check it again.
import { existsSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { cliBundle } from './cli-bundle.mjs'

let bundle = process.env.DFLOW_PEER_BUNDLE
delete process.env.DFLOW_PEER_BUNDLE
if (process.argv[2] !== 'peer' || bundle === undefined || bundle === '' || !existsSync(bundle)) {
  bundle = await cliBundle(err => {
    if (process.env.DEBUG !== undefined) process.stderr.write(`dflow: no CLI bundle (${err.message}); loading the sources through tsx\n`)
  })
}
// DFLOW_SHOW_LOADER=1: say which way the CLI loads (tests check it; not under DEBUG, whose output may be JSON lines)
if (process.env.DFLOW_SHOW_LOADER === '1') process.stderr.write(bundle !== undefined ? `dflow: CLI bundle ${bundle}\n` : 'dflow: CLI sources through tsx\n')
let main
if (bundle !== undefined) {
  ;({ main } = await import(pathToFileURL(bundle).href))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('../node/cli/main.ts'))
}
await main(process.argv.slice(2))
