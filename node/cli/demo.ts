import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command } from 'commander'
import { startTestnet } from '../../testnet/index.ts'
import { printManifestTable, progressReporter } from '../../testnet/cli.ts'
import { loadWorkflow } from '../workflow/index.ts'
import { renderView } from './render.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))

async function sampleText (): Promise<string> {
  const parts = await Promise.all(['README.md', 'docs/ARCHITECTURE.md', 'docs/workflow.md'].map(async f => readFile(join(root, f), 'utf8').catch(() => '')))
  return parts.join('\n').repeat(3)
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export function registerDemoCommand (program: Command): void {
  program.command('demo')
    .description('a 5-peer testnet, the wordcount workflow submitted to one peer, its result and timeline, dataflow vs control, then stop')
    .option('--peers <n>', 'number of peers', '5')
    .option('--rounds <n>', 'dataflow/control request pairs timed after the first request', '3')
    .action(async (opts: { peers: string, rounds: string }) => {
      const dir = await mkdtemp(join(tmpdir(), 'dflow-demo-'))
      const t0 = Date.now()
      const testnet = await startTestnet({ peers: Number(opts.peers), dir, onProgress: progressReporter() })
      try {
        const peers = testnet.manifest.peers
        process.stdout.write(`testnet of ${peers.length} peers formed in ${Date.now() - t0} ms (dir ${dir})\n`)
        printManifestTable(testnet.manifest)
        const names = new Map(peers.map(p => [p.peerId, `peer ${p.index}`]))
        const client = await testnet.client(1 % peers.length)
        const file = await loadWorkflow(join(root, 'functions/wordcount/workflow.yaml'))
        const workflow = await client.addWorkflow(file.bytes)
        const text = await sampleText()
        process.stdout.write(`\nwordcount (workflow ${workflow}) submitted to peer ${1 % peers.length}, ${text.length} characters of text:\n`)
        const first = await client.wait(await client.submit({ workflow, inputs: { text } }))
        process.stdout.write(renderView(first, { peers: names }) + '\n')
        const rounds = Math.max(1, Number(opts.rounds))
        const times: Record<string, number[]> = { dataflow: [], control: [] }
        process.stdout.write(`\ntiming ${rounds} request(s) per mode, alternating:\n`)
        for (let i = 0; i < rounds; i++) {
          for (const mode of ['dataflow', 'control']) {
            const at = await testnet.client((i + 1) % peers.length)
            const started = Date.now()
            const v = await at.wait(await at.submit({ workflow, inputs: { text: `${text}\n${i}` }, mode }))
            if (v.status !== 'ok') throw new Error(`${mode} request failed: ${v.error}`)
            times[mode].push(Date.now() - started)
          }
        }
        const d = median(times.dataflow)
        const c = median(times.control)
        process.stdout.write(`end-to-end median: dataflow ${d} ms, control ${c} ms (dataflow/control ${(d / c).toFixed(2)})\n`)
      } finally {
        await testnet.stop()
        await rm(dir, { recursive: true, force: true })
        process.stdout.write('testnet stopped\n')
      }
    })
}
