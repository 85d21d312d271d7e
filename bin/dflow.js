#!/usr/bin/env node
// The `dflow` command. TypeScript sources are loaded in-process through tsx's loader, so the pid of this
// process is the peer's own Node process (no wrapper child). A testnet launcher may hand its peers a
// prebuilt bundle instead (DFLOW_PEER_BUNDLE, see testnet/bundle.ts): same code, no loader thread.
import { pathToFileURL } from 'node:url'

const bundle = process.env.DFLOW_PEER_BUNDLE
let main
if (bundle !== undefined && bundle !== '' && process.argv[2] === 'peer') {
  delete process.env.DFLOW_PEER_BUNDLE
  ;({ main } = await import(pathToFileURL(bundle).href))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('../node/cli/main.ts'))
}
await main(process.argv.slice(2))
