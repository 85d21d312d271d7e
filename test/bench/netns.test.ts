/**
 * --link-rate's network namespaces: as root with iproute2, two peers run as test hosts on 10.x addresses behind
 * rate-limited veth links, answer a request, and everything is removed on stop. Without root it must refuse
 * with LinkRateUnsupportedError (both branches are real checks; which one runs depends on the machine).
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DflowClient } from '../../node/client.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { requireLinkRateSupport, startNetnsTestnet } from '../../testnet/bench/netns.ts'
import { credentialsFor } from '../../testnet/clients.ts'

function supported (): boolean {
  try { requireLinkRateSupport(); return true } catch { return false }
}

describe('bench netns (--link-rate)', () => {
  it.runIf(!supported())('refuses without root or iproute2', () => {
    expect(() => { requireLinkRateSupport() }).toThrow(expect.objectContaining({ name: 'LinkRateUnsupportedError' }))
  })

  it.runIf(supported())('runs peers in namespaces behind rate-limited links and removes everything on stop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-netns-'))
    const net = await startNetnsTestnet({ peers: 2, dir, flags: ['--slots', '2'], linkRate: 20_000_000 })
    try {
      expect(net.peers.map(p => new URL(p.api).hostname)).toEqual(expect.arrayContaining([expect.stringMatching(/^10\./)]))
      const qdiscs = execFileSync('tc', ['qdisc', 'show'], { encoding: 'utf8' })
      expect(qdiscs).toMatch(/tbf .*rate 160Mbit/)
      const wc = exampleWorkflows.find(e => e.name === 'wordcount')!
      const file = await loadWorkflow(wc.path)
      const clients = net.peers.map(p => new DflowClient(p.api, credentialsFor(p.api)))
      for (const c of clients) await c.addWorkflow(file.bytes)
      const view = await clients[1].wait(await clients[1].submit({ workflow: file.cid, inputs: wc.inputs }), { pollMs: 50 })
      expect(view.status).toBe('ok')
      expect(view.outputs).toMatchObject(wc.expect)
    } finally {
      await net.stop()
      await rm(dir, { recursive: true, force: true })
    }
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    for (const ns of net.namespaces) expect(namespaces).not.toContain(ns)
    expect(execFileSync('ip', ['link', 'show'], { encoding: 'utf8' })).not.toContain(net.bridge)
  }, 120_000)
})
