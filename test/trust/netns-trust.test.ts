/**
 * Across hosts: 4 peers in network namespaces, each on its own 10.x address, form a private network with the
 * directory's swarm key. A request submitted to one finishes and its result is read on another; a fifth host
 * without the key cannot join (with no key it refuses to start on a non-loopback address; with another key
 * its handshakes fail). Needs root and iproute2; skipped with the reason otherwise.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DflowClient } from '../../node/client.ts'
import { createSwarmKeyFile } from '../../node/keys.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { NetnsNetwork, netnsSupport } from '../../testnet/netns.ts'
import { credentialsFor, authHeaderFor } from '../../testnet/clients.ts'
import { waitHealthy } from '../../testnet/launcher.ts'
import { isAlive } from '../../testnet/process.ts'
import type { PeersResponse } from '../../node/api/peers.ts'

const why = netnsSupport()
if (why !== undefined) process.stderr.write(`netns trust test skipped: network namespaces ${why}\n`)

async function connectedPeers (api: string): Promise<string[]> {
  const res = await fetch(`${api}/v1/peers`, { headers: authHeaderFor(api), signal: AbortSignal.timeout(5000) })
  const body = await res.json() as PeersResponse
  return body.peers.filter(p => p.connected).map(p => p.peerId)
}

describe('private network across hosts (network namespaces)', () => {
  it.runIf(why === undefined)('4 hosts with the swarm key run a request; a host without it cannot join', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-netns-trust-'))
    const net = new NetnsNetwork(5)
    try {
      await net.create()
      const all = await net.manifest(dir)
      const peers = all.slice(0, 4)
      const outsider = all[4]
      await net.startPeers(peers, ['--slots', '2'])
      for (const p of peers) expect(new URL(p.api).hostname).toMatch(/^10\./)

      const wc = exampleWorkflows.find(e => e.name === 'wordcount')!
      const file = await loadWorkflow(wc.path)
      const at0 = new DflowClient(peers[0].api, credentialsFor(peers[0].api))
      const at3 = new DflowClient(peers[3].api, credentialsFor(peers[3].api))
      await at0.addWorkflow(file.bytes)
      const id = await at0.submit({ workflow: file.cid, inputs: wc.inputs })
      const view = await at3.wait(id, { pollMs: 100 })
      expect(view.status, view.error).toBe('ok')
      expect(view.outputs).toMatchObject(wc.expect)
      // without a token, reads from outside loopback are refused too
      expect((await fetch(`${peers[3].api}/v1/requests/${id}`, { signal: AbortSignal.timeout(5000) })).status).toBe(401)

      // no key: a non-loopback peer refuses to start at all
      const keyless = net.spawn(outsider, [peers[0].multiaddrs[0]], [])
      for (let i = 0; i < 300 && keyless.exited() === undefined && isAlive(keyless.pid); i++) await new Promise(resolve => setTimeout(resolve, 100))
      expect(keyless.exited() ?? 'gone').not.toBe('exit code 0')
      expect(await readFile(outsider.log, 'utf8')).toMatch(/without a swarm key/)

      // another key: it starts, dials peer 0, and no handshake succeeds
      const otherKey = join(dir, 'other-swarm.key')
      await createSwarmKeyFile(otherKey)
      const stranger = net.spawn(outsider, [peers[0].multiaddrs[0]], ['--swarm-key', otherKey])
      await waitHealthy(outsider.api, outsider.peerId, stranger, outsider.log, 60_000)
      // bootstrap dials at start and discovery redials every few seconds while it has no connection
      await new Promise(resolve => setTimeout(resolve, 5000))
      expect(isAlive(stranger.pid)).toBe(true)
      for (const p of peers) expect(await connectedPeers(p.api)).not.toContain(outsider.peerId)
      // the keyed peers do see each other (the check above is not vacuous)
      expect(await connectedPeers(peers[0].api)).toEqual(expect.arrayContaining(peers.slice(1).map(p => p.peerId)))
    } finally {
      await net.destroy()
      await rm(dir, { recursive: true, force: true })
    }
  }, 240_000)
})
