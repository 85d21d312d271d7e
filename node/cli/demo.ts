import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { startTestnet } from '../../testnet/index.ts'
import { printManifestTable, progressReporter } from '../../testnet/cli.ts'

export function registerDemoCommand (program: Command): void {
  program.command('demo')
    .description('start a 5-peer testnet in a temporary directory, show it, stop it')
    .option('--peers <n>', 'number of peers', '5')
    .action(async (opts: { peers: string }) => {
      const dir = await mkdtemp(join(tmpdir(), 'dflow-demo-'))
      const t0 = Date.now()
      const testnet = await startTestnet({ peers: Number(opts.peers), dir, onProgress: progressReporter() })
      try {
        process.stdout.write(`testnet of ${testnet.manifest.peers.length} peers formed in ${Date.now() - t0} ms (dir ${dir})\n`)
        printManifestTable(testnet.manifest)
        const status = await testnet.status()
        for (const s of status) process.stdout.write(`peer ${s.index}: ${s.alive ? 'alive' : 'dead'}, ${s.connected ?? '?'} connected, ${s.routingTable ?? '?'} in routing table\n`)
      } finally {
        await testnet.stop()
        await rm(dir, { recursive: true, force: true })
        process.stdout.write('testnet stopped\n')
      }
    })
}
