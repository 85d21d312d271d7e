import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { testnetClients } from '../../testnet/clients.ts'
import { startTestnet, type Testnet } from '../../testnet/index.ts'
import { DflowClient } from '../../node/client.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { has, scrape, sum, type Sample } from './prom-text.ts'
import { execFile } from 'node:child_process'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))
const PIPELINE = fileURLToPath(new URL('../dscheduler/fixtures/pipeline.yaml', import.meta.url))

describe('GET /metrics on a 2-peer testnet', () => {
  let dir: string
  let net: Testnet
  let clients: DflowClient[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-metrics-'))
    // the peers inherit DEBUG: their start line is a detail line, written as JSON (--log-format json)
    const debug = process.env.DEBUG
    process.env.DEBUG = 'dflow:peer'
    try {
      net = await startTestnet({ peers: 2, dir, flags: ['--libp2p-metrics', '--slots', '2', '--log-format', 'json'] })
    } finally {
      if (debug === undefined) delete process.env.DEBUG
      else process.env.DEBUG = debug
    }
    clients = await testnetClients(dir, net.manifest.peers)
  }, 120_000)

  afterAll(async () => {
    await net?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const scrapeAll = async (): Promise<Sample[][]> => Promise.all(net.manifest.peers.map(async p => (await scrape(p.api)).samples))
  const total = (all: Sample[][], name: string, labels: Record<string, string> = {}): number => all.reduce((a, s) => a + sum(s, name, labels), 0)

  it('serves the text format with every dflow metric, typed, counters ending in _total', async () => {
    const { samples, types, contentType } = await scrape(net.manifest.peers[0].api)
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(types.get('dflow_requests_total')).toBe('counter')
    expect(types.get('dflow_step_duration_seconds')).toBe('histogram')
    expect(types.get('dflow_cold_start_seconds')).toBe('histogram')
    expect(types.get('dflow_claims_total')).toBe('counter')
    expect(types.get('dflow_transfer_bytes_total')).toBe('counter')
    expect(types.get('dflow_store_bytes')).toBe('gauge')
    expect(types.get('dflow_peers_connected')).toBe('gauge')
    expect(types.get('dflow_event_loop_lag_seconds')).toBe('gauge')
    expect(types.get('dflow_pool_instances')).toBe('gauge')
    expect(types.get('dflow_instance_starts_total')).toBe('counter')
    for (const state of ['idle', 'busy', 'starting', 'stem_cell', 'queued']) expect(samples.some(s => s.name === 'dflow_pool_instances' && s.labels.state === state), state).toBe(true)
    for (const [name, type] of types) if (type === 'counter') expect(name, `${name} is a counter`).toMatch(/_total$/)
    expect(sum(samples, 'dflow_peers_connected')).toBe(1)
    expect(sum(samples, 'dflow_event_loop_lag_seconds')).toBeGreaterThanOrEqual(0)
    // process metrics, and libp2p's own (the testnet runs with --libp2p-metrics)
    expect(has(samples, 'process_resident_memory_bytes')).toBe(true)
    expect(samples.some(s => s.name.startsWith('libp2p_'))).toBe(true)
    for (const label of ['won', 'lost', 'takeover']) expect(samples.some(s => s.name === 'dflow_claims_total' && s.labels.outcome === label)).toBe(true)
  })

  it('values move when a request runs', async () => {
    const before = await scrapeAll()
    const file = await loadWorkflow(PIPELINE)
    const workflow = await clients[0].addWorkflow(file.bytes)
    // control mode on fresh peers: every instance starts cold, so cold starts must be observed
    const id = await clients[0].submit({ workflow, inputs: { n: 4 }, mode: 'control' })
    const view = await clients[0].wait(id)
    expect(view.status, view.error).toBe('ok')
    const ran = view.steps.filter(s => s.status === 'ok')
    expect(ran.length).toBe(1 + 4 + 4 + 1)
    // the step-done events of the other peer reach peer 0 before the request is done there, and each peer
    // observed its own instances when it published them; wait for both peers to have finished the request
    await Promise.all(clients.map(async c => c.wait(id)))
    const after = await scrapeAll()

    expect(sum(after[0], 'dflow_requests_total', { mode: 'control', status: 'ok' }) - sum(before[0], 'dflow_requests_total', { mode: 'control', status: 'ok' })).toBe(1)
    // counted once, at the submitter
    expect(total(after, 'dflow_requests_total') - total(before, 'dflow_requests_total')).toBe(1)
    // each peer observed exactly the instances it ran: its step-done events (a re-run after a lapsed lease counts too)
    const body = await (await fetch(`${net.manifest.peers[0].api}/v1/requests/${id}/events`)).text()
    const done = body.split('\n\n').filter(b => b.startsWith('event: step-done')).map(b => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as { from: string, coldStartMs: number })
    expect(done.length).toBeGreaterThanOrEqual(ran.length)
    net.manifest.peers.forEach((p, i) => {
      const mine = done.filter(d => d.from === p.peerId)
      expect(sum(after[i], 'dflow_step_duration_seconds_count') - sum(before[i], 'dflow_step_duration_seconds_count'), `peer ${i}`).toBe(mine.length)
      expect(sum(after[i], 'dflow_cold_start_seconds_count') - sum(before[i], 'dflow_cold_start_seconds_count'), `peer ${i}`).toBe(mine.filter(d => d.coldStartMs > 0).length)
      // every cold start needed an instance started, in a fresh process or a stem cell
      const starts = (all: Sample[]): number => sum(all, 'dflow_instance_starts_total', { kind: 'boot' }) + sum(all, 'dflow_instance_starts_total', { kind: 'stem_cell' })
      expect(starts(after[i]) - starts(before[i]), `peer ${i}`).toBeGreaterThanOrEqual(mine.filter(d => d.coldStartMs > 0).length)
    })
    expect(done.filter(d => d.coldStartMs > 0).length).toBeGreaterThan(0)
    // the instances that ran stay warm (idle) until --idle-instance
    expect(total(after, 'dflow_pool_instances', { state: 'idle' })).toBeGreaterThan(0)
    expect(total(after, 'dflow_claims_total', { outcome: 'won' }) - total(before, 'dflow_claims_total', { outcome: 'won' })).toBeGreaterThanOrEqual(ran.length)
    // events travel over gossipsub: both directions moved bytes on both peers
    for (let i = 0; i < 2; i++) {
      for (const direction of ['sent', 'received']) {
        const d = sum(after[i], 'dflow_transfer_bytes_total', { direction }) - sum(before[i], 'dflow_transfer_bytes_total', { direction })
        expect(d, `peer ${i} ${direction}`).toBeGreaterThan(0)
      }
    }
    // the workflow bundle is stored on peer 0 (it was added there)
    expect(sum(after[0], 'dflow_store_bytes')).toBeGreaterThan(0)
  })

  it('dflow testnet logs merges the peers\' process logs in time order; --log-format json lines are JSON', async () => {
    const run = async (...args: string[]): Promise<string> => new Promise((resolve, reject) => {
      execFile(process.execPath, [BIN, 'testnet', 'logs', '--dir', dir, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        if (err != null) reject(new Error(`${err.message}\n${stderr}`))
        else resolve(stdout)
      })
    })
    const lines = (await run()).split('\n').filter(l => l !== '')
    const json = lines.map(l => /^peer-(\d+) \| (\{.*)$/.exec(l)).filter(m => m != null).map(m => ({ peer: Number(m[1]), obj: JSON.parse(m[2]) as { ts: string, level: string, component: string, peer: string, msg: string } }))
    const started = json.filter(j => j.obj.component === 'dflow:peer' && j.obj.msg.startsWith('started'))
    expect(started.map(j => j.peer).sort()).toEqual([0, 1])
    for (const j of started) {
      expect(j.obj.level).toBe('debug')
      expect(j.obj.peer).toBe(net.manifest.peers[j.peer].peerId)
    }
    const times = json.map(j => Date.parse(j.obj.ts))
    expect(times).toEqual([...times].sort((a, b) => a - b))
    const only1 = (await run('--peer', '1')).split('\n').filter(l => l !== '')
    expect(only1.length).toBeGreaterThan(0)
    expect(only1.every(l => l.startsWith('peer-1 | '))).toBe(true)
  })
})
