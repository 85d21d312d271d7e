import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isAlive, readManifest } from '../../testnet/index.ts'
import { PEER_ENV } from '../../testnet/launcher.ts'
import { MALLOC_TUNABLES } from '../../node/util/malloc-tunables.ts'
import type { PeersResponse } from '../../node/api/peers.ts'
import type { MembershipView } from '../../node/dscheduler/membership.ts'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))

interface Run { code: number, stdout: string, stderr: string }

async function dflow (...args: string[]): Promise<Run> {
  return new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err == null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

async function peersOf (api: string): Promise<PeersResponse['peers']> {
  const res = await fetch(`${api}/v1/peers`, { signal: AbortSignal.timeout(3000) })
  return (await res.json() as PeersResponse).peers
}

async function membershipOf (api: string): Promise<MembershipView> {
  const res = await fetch(`${api}/v1/membership`, { signal: AbortSignal.timeout(3000) })
  return await res.json() as MembershipView
}

async function until (what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

describe('dflow testnet (processes)', () => {
  let dir: string
  const allPids = new Set<number>()

  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'dflow-testnet-')) })

  afterAll(async () => {
    // whatever happened above, leave no peer behind
    const m = await readManifest(dir).catch(() => undefined)
    for (const p of m?.peers ?? []) allPids.add(p.pid)
    for (const pid of allPids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    await rm(dir, { recursive: true, force: true })
  }, 30_000)

  it('up 4, status, kill 1, restart it, down', async () => {
    const up = await dflow('testnet', 'up', '--peers', '4', '--dir', dir, '--slots', '2', '--lease', '2s')
    const m = await readManifest(dir)
    for (const p of m?.peers ?? []) allPids.add(p.pid)
    expect(up.stderr).not.toMatch(/^error:/m)
    expect(up.code).toBe(0)
    expect(m?.status).toBe('up')
    // the testnet is a private network: its swarm key and its client identity's authorization go to every peer
    expect(m?.flags).toEqual(['--slots', '2', '--lease', '2000', '--swarm-key', join(dir, 'swarm.key'), '--authorized-submitters', join(dir, 'authorized-submitters')])
    expect(m?.peers).toHaveLength(4)
    for (const p of m!.peers) {
      expect(up.stdout).toContain(`dashboard of peer ${p.index}: ${p.api}/`)
      expect(up.stdout).toContain(p.peerId)
      expect(p.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(isAlive(p.pid)).toBe(true)
      // the peer runs with PEER_ENV beneath the caller's environment
      const environ = readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0')
      expect(environ).toContain(`MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? PEER_ENV.MALLOC_ARENA_MAX}`)
      // glibc parses GLIBC_TUNABLES in place at start (its ':' become NULs in the process's environ): a prefix shows
      const tunables = environ.find(e => e.startsWith('GLIBC_TUNABLES='))?.slice('GLIBC_TUNABLES='.length)
      expect(tunables).toBeTruthy()
      expect((process.env.GLIBC_TUNABLES ?? MALLOC_TUNABLES).startsWith(tunables!)).toBe(true)
      // readiness: connected to min(N-1, 4) others, every other peer alive in its membership, a gossip mesh peer
      const list = await peersOf(p.api)
      const others = m!.peers.filter(o => o !== p).map(o => o.peerId).sort()
      expect(list.filter(e => e.connected).map(e => e.peerId).sort()).toEqual(others)
      expect(list.some(e => e.mesh && e.subscribed)).toBe(true)
      const members = await membershipOf(p.api)
      expect(members.members.filter(e => e.state === 'alive').map(e => e.peerId).sort()).toEqual(others)
    }

    const status = await dflow('testnet', 'status', '--dir', dir, '--json')
    expect(status.code).toBe(0)
    const parsed = JSON.parse(status.stdout) as { peers: Array<{ alive: boolean, connected: number }> }
    expect(parsed.peers.map(p => [p.alive, p.connected])).toEqual(Array(4).fill([true, 3]))

    const victim = m!.peers[1]
    expect((await dflow('testnet', 'kill', '1', '--dir', dir)).code).toBe(0)
    expect(isAlive(victim.pid)).toBe(false)
    await until('the others to list peer 1 as not connected', async () => {
      for (const p of m!.peers.filter(p => p !== victim)) {
        const entry = (await peersOf(p.api)).find(e => e.peerId === victim.peerId)
        if (entry?.connected !== false && entry !== undefined) return false
      }
      return true
    }, 10_000)
    const afterKill = JSON.parse((await dflow('testnet', 'status', '--dir', dir, '--json')).stdout) as { peers: Array<{ alive: boolean }> }
    expect(afterKill.peers.map(p => p.alive)).toEqual([true, false, true, true])

    const restart = await dflow('testnet', 'restart', '1', '--dir', dir)
    expect(restart.code).toBe(0)
    const m2 = await readManifest(dir)
    const back = m2!.peers[1]
    allPids.add(back.pid)
    expect(back.pid).not.toBe(victim.pid)
    expect(back.peerId).toBe(victim.peerId)
    expect(back.api).toBe(victim.api)
    const health = await (await fetch(`${back.api}/v1/health`)).json() as { peerId: string }
    expect(health.peerId).toBe(victim.peerId)
    // restart waits until every live peer knows the new incarnation
    const incarnation = (await membershipOf(back.api)).incarnation
    for (const p of m2!.peers.filter(p => p !== back)) {
      const entry = (await membershipOf(p.api)).members.find(e => e.peerId === back.peerId)
      expect(entry).toMatchObject({ state: 'alive', incarnation })
    }

    const down = await dflow('testnet', 'down', '--dir', dir)
    expect(down.code).toBe(0)
    const m3 = await readManifest(dir)
    expect(m3?.status).toBe('down')
    expect([...allPids].filter(isAlive)).toEqual([])
  })

  it('rejects bad input with a clear error and a non-zero exit', async () => {
    // independent CLI runs go side by side: most of each is the CLI's start-up
    const [missing, badFlag, badAddr] = await Promise.all([
      dflow('testnet', 'status', '--dir', join(dir, 'nothing-here')),
      dflow('testnet', 'up', '--peers', '2', '--dir', dir, '--lease', 'soon'),
      dflow('peer', '--listen', '/ip4/999.0.0.1/tcp/1')
    ])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^error: no testnet in/m)
    expect(badFlag.code).toBe(2)
    expect(badFlag.stderr).toContain('--lease')
    expect(badAddr.code).toBe(2)
    expect(badAddr.stderr).toMatch(/^error: --listen: invalid multiaddr/m)

    const up = await dflow('testnet', 'up', '--peers', '2', '--dir', dir)
    for (const p of (await readManifest(dir))?.peers ?? []) allPids.add(p.pid)
    expect(up.code).toBe(0)

    const m = await readManifest(dir)
    const [again, kill7, restart7, portInUse] = await Promise.all([
      dflow('testnet', 'up', '--peers', '2', '--dir', dir),
      dflow('testnet', 'kill', '7', '--dir', dir),
      dflow('testnet', 'restart', '7', '--dir', dir),
      dflow('peer', '--listen', m!.peers[0].multiaddrs[0].replace(/\/p2p\/.*$/, ''))
    ])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/still running/)
    for (const r of [kill7, restart7]) {
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/no peer 7/)
    }
    expect(portInUse.code).toBe(1)
    expect(portInUse.stderr).toMatch(/port already in use/)

    expect((await dflow('testnet', 'down', '--dir', dir)).code).toBe(0)
    expect([...allPids].filter(isAlive)).toEqual([])
  })
})
