/**
 * A testnet is a private network with a client identity: `dflow submit` and `dflow cancel` sign with
 * DIR/client.key, another identity is refused ("not authorized"), a cancel signed by a stranger changes
 * nothing, and the API wants its token for writes.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestnet, type Testnet } from '../../testnet/index.ts'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { createIdentityFile } from '../../node/keys.ts'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))
const fixture = (name: string): string => fileURLToPath(new URL(`../dscheduler/fixtures/${name}`, import.meta.url))

async function dflow (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

describe('a testnet signs and authorizes', () => {
  let dir: string
  let net: Testnet

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-trust-'))
    net = await startTestnet({ peers: 3, dir, flags: ['--slots', '2'] })
  }, 120_000)

  afterAll(async () => {
    await net?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('makes its swarm key and client identity and passes them to every peer', async () => {
    for (const f of ['swarm.key', 'client.key', 'authorized-submitters']) expect((await stat(join(dir, f))).mode & 0o777).toBe(0o600)
    expect(net.manifest.flags).toEqual(expect.arrayContaining(['--swarm-key', join(dir, 'swarm.key'), '--authorized-submitters', join(dir, 'authorized-submitters')]))
    for (const p of net.manifest.peers) expect((await stat(join(p.dataDir, 'api.token'))).mode & 0o777).toBe(0o600)
  })

  it('dflow submit signs with DIR/client.key; the result is read on another peer', async () => {
    const wc = exampleWorkflows.find(e => e.name === 'wordcount')!
    const args = Object.entries(wc.inputs).flatMap(([k, v]) => ['--input', `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`])
    const r = await dflow(['submit', wc.path, ...args, '--dir', dir, '--peer', '0', '--no-wait', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const { requestId } = JSON.parse(r.stdout) as { requestId: string }
    const s = await dflow(['status', requestId, '--dir', dir, '--peer', '2', '--wait', '--json'])
    expect(s.code, s.stderr).toBe(0)
    expect(JSON.parse(s.stdout)).toMatchObject({ status: 'ok', outputs: wc.expect })
  }, 60_000)

  it('refuses a submission signed by an identity nobody authorized (exit 1, "not authorized")', async () => {
    const other = join(dir, 'other.key')
    const k = await dflow(['key', 'new', other])
    expect(k.code, k.stderr).toBe(0)
    expect(k.stdout.trim()).toMatch(/^12D3KooW/)
    const r = await dflow(['submit', fixture('pipeline.yaml'), '--dir', dir, '--identity', other, '--input', 'n=3', '--no-wait'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/not authorized/)
    expect(r.stderr).toContain(k.stdout.trim())
    // unsigned (no identity, --api with the token): refused too
    const token = join(net.manifest.peers[1].dataDir, 'api.token')
    const u = await dflow(['submit', fixture('pipeline.yaml'), '--api', net.manifest.peers[1].api, '--token', token, '--input', 'n=3', '--no-wait'])
    expect(u.code).toBe(1)
    expect(u.stderr).toMatch(/not authorized: the request is not signed/)
  }, 60_000)

  it('a cancel signed by a stranger changes nothing; the submitter\'s cancel stops the request everywhere', async () => {
    // submitted through the API client (signed with DIR/client.key, as dflow submit does): fewer CLI start-ups
    const at1 = await net.client(1)
    const file = await loadWorkflow(fileURLToPath(new URL('./fixtures/wait-cancel.yaml', import.meta.url)))
    await at1.addWorkflow(file.bytes)
    const id = await at1.submit({ workflow: file.cid, inputs: {} })
    const client = await net.client(2)
    // the request is known on peer 2 before the stranger tries there
    for (let i = 0; i < 100; i++) { try { await client.status(id); break } catch { await new Promise(resolve => setTimeout(resolve, 100)) } }
    const stranger = join(dir, 'stranger.key')
    await createIdentityFile(stranger)
    const forged = await dflow(['cancel', id, '--dir', dir, '--peer', '2', '--identity', stranger])
    expect(forged.code).toBe(1)
    expect(forged.stderr).toMatch(/not authorized/)
    expect((await client.status(id)).status).toBe('running')
    // through the peer it was submitted to: the scheduler also wants a cancel's publisher to be that peer
    const ok = await dflow(['cancel', id, '--dir', dir, '--peer', '1'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toContain(`cancelled ${id}`)
    // peer 0 heard the cancel through gossip (its validator accepted the submitter's signature)
    const view = await (await net.client(0)).wait(id)
    expect(view.status).toBe('failed')
    expect(view.error).toMatch(/cancelled/)
  }, 180_000)

  it('writes need the API token (401) and a JSON or CBOR body (415)', async () => {
    const api = net.manifest.peers[0].api
    const token = (await readFile(join(net.manifest.peers[0].dataDir, 'api.token'), 'utf8')).trim()
    const noToken = await fetch(`${api}/v1/requests`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(noToken.status).toBe(401)
    const plain = await fetch(`${api}/v1/requests`, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${token}` }, body: '{}' })
    expect(plain.status).toBe(415)
    const unknown = await fetch(`${api}/v1/blocks/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy`)
    expect(unknown.status).toBe(404)
    expect((await fetch(`${api}/v1/health`)).status).toBe(200)
  })

  it('a workflow CID nobody holds answers 404, a malformed one 400', async () => {
    const client = await net.client(1)
    await expect(client.submit({ workflow: 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', inputs: {} })).rejects.toMatchObject({ name: 'ApiError', status: 404 })
    await expect(client.submit({ workflow: 'not-a-cid', inputs: {} })).rejects.toMatchObject({ name: 'ApiError', status: 400 })
  }, 90_000)
})
