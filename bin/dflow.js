#!/usr/bin/env node
// The `dflow` command. TypeScript sources are loaded in-process through tsx's loader, so the pid of this
// process is the peer's own Node process (no wrapper child).
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../node/cli/main.ts')
await main(process.argv.slice(2))
