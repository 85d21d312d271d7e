/**
 * CPU per request of one shape in two checkouts, measured side by side:
 * `AB_BASE=/path/to/other/checkout SHAPE=fan N=30 ROUNDS=2 npx tsx testnet/bench/micro/ab-cpu.ts`, or with
 * `COST=workflow WF=wordcount MODES=dataflow N=30` a FaaSFlow workflow through workflow-cost.ts.
 *
 * This machine's speed drifts by 10-15% within minutes (a VM on a shared host), more than most single changes
 * save, so two runs one after the other compare the drift as much as the code. Here both checkouts run
 * shape-cost.ts at the same time, each on its own testnet: they share the machine, so drift and contention
 * hit both alike, and the peers' CPU per request (utime + stime from /proc, which contention does not inflate
 * the way it inflates latency) is compared within each round. Prints each round's pair and the ratio of the
 * sums (this checkout / AB_BASE: below 1, this one uses less). Latencies are printed too, but under shared load
 * they say little. Both checkouts need their node_modules (a symlink to this one's will do).
 */
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = resolve(fileURLToPath(new URL('../../..', import.meta.url)))
const base = process.env.AB_BASE
if (base === undefined || base === '') {
  console.error('AB_BASE must name the other checkout (a directory with testnet/bench/micro/shape-cost.ts)')
  process.exit(2)
}
const rounds = Number(process.env.ROUNDS ?? 2)

interface Figures { cpuMs: number, medianMs: number }

/** Runs shape-cost.ts in `dir` and reads its last summary line. */
async function run (dir: string): Promise<Figures> {
  const script = process.env.COST === 'workflow' ? 'workflow-cost.ts' : 'shape-cost.ts'
  const child = spawn('npx', ['tsx', `testnet/bench/micro/${script}`], { cwd: dir, env: process.env, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  const m = /median after 2: (\d+) ms; peer CPU per request (\d+) ms/.exec(out) ?? /p50 after 2: (\d+) ms .*CPU\/request peers (\d+) ms/.exec(out)
  if (code !== 0 || m === null) throw new Error(`${script} in ${dir} exited ${String(code)} without its summary:\n${out.slice(-2000)}`)
  return { medianMs: Number(m[1]), cpuMs: Number(m[2]) }
}

let mine = 0
let theirs = 0
for (let r = 1; r <= rounds; r++) {
  const [a, b] = await Promise.all([run(here), run(resolve(base))])
  mine += a.cpuMs
  theirs += b.cpuMs
  console.log(`round ${r}: peer CPU per request ${a.cpuMs} ms here, ${b.cpuMs} ms in ${base} (median ${a.medianMs} / ${b.medianMs} ms, shared load)`)
}
console.log(`peer CPU per request, here / ${base}: ${(mine / theirs).toFixed(3)} over ${rounds} round(s)`)
