import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readManifest } from '../../testnet/index.ts'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))
const RETRY = fileURLToPath(new URL('../dscheduler/fixtures/retry.yaml', import.meta.url))

async function dflow (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err == null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** The instance processes a peer started: its children running process-entry.mjs. */
function instancesOf (peerPid: number): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1')
      if (ppid === peerPid && cmd.includes('process-entry.mjs')) pids.push(Number(name))
    } catch {}
  }
  return pids
}

/** Alive and not a zombie (an orphan reparented to an init that does not reap would look alive to kill(0)). */
function running (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** CPU time (user, clock ticks) a process has used. */
function cpuTicks (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11])
  } catch {
    return 0
  }
}

async function until (what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

const WORKFLOW = `version: 1
name: orphans
inputs: []
outputs: { a: spin.x, b: sleep.x }
steps:
  spin:
    run: ./orphans.js#spin
    timeout: 10m
    in: {}
    out: [x]
  sleep:
    run: ./orphans.js#sleep
    timeout: 10m
    in: {}
    out: [x]
`
// one instance in a busy loop (its event loop never sees the IPC channel close) and one waiting on a timer
const MODULE = `export async function spin () { for (;;) {} }
export async function sleep () { await new Promise(r => setTimeout(r, 600_000)) }
`

describe.skipIf(process.platform !== 'linux')('executor: instance processes die with their peer', () => {
  let dir: string
  const instances: number[] = []
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'dflow-orphans-')) })
  afterAll(async () => {
    const m = await readManifest(join(dir, 'net')).catch(() => undefined)
    // only real pids: kill(0) or kill(-1) would take the test runner's own process group (or every process) with it
    for (const pid of [...(m?.peers ?? []).map(p => p.pid), ...instances]) { if (Number.isInteger(pid) && pid > 1) try { process.kill(pid, 'SIGKILL') } catch {} }
    await rm(dir, { recursive: true, force: true })
  }, 30_000)

  it('SIGKILL of a peer leaves no instance process behind, busy or idle', async () => {
    await writeFile(join(dir, 'workflow.yaml'), WORKFLOW)
    await writeFile(join(dir, 'orphans.js'), MODULE)
    const net = join(dir, 'net')
    const up = await dflow('testnet', 'up', '--peers', '1', '--dir', net, '--isolation', 'process', '--max-retries', '0')
    expect(up.stderr).not.toMatch(/^error:/m)
    expect(up.code).toBe(0)
    const peer = (await readManifest(net))!.peers[0]

    // (the same peer, to spare the machine another start: a step over its limits is refused at submit)
    const refused = await dflow('submit', RETRY, '--dir', net, '--peer', '0', '--no-wait')
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/step flaky: retries 1 exceeds this peer's limit of 0 \(--max-retries\)/)
    expect(instancesOf(peer.pid)).toEqual([])
    const sub = await dflow('submit', join(dir, 'workflow.yaml'), '--dir', net, '--peer', '0', '--no-wait')
    expect(sub.stderr).not.toMatch(/^error:/m)
    expect(sub.code).toBe(0)
    await until('both instances to run', () => instancesOf(peer.pid).length >= 2, 60_000)
    // the spinning one must really be in its loop (not just pre-warmed) when the peer dies
    await until('an instance to spin', () => instancesOf(peer.pid).some(pid => cpuTicks(pid) >= 20), 60_000)
    instances.push(...instancesOf(peer.pid))
    process.kill(peer.pid, 'SIGKILL')
    await until('the instances to die with their peer', () => instances.every(pid => !running(pid)), 10_000)
    for (const pid of instances) expect(running(pid)).toBe(false)
  }, 240_000)
})
