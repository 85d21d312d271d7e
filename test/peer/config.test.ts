import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { configToArgs, DEFAULT_CONFIG, loadConfig, parseBytes, parseDuration } from '../../node/config.ts'

describe('peer config', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'dflow-config-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('defaults', async () => {
    const c = await loadConfig()
    expect(c).toMatchObject({ listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, slots: 4, replicas: 2, inlineLimit: 16384, leaseMs: 0, storeCapacity: 2 * 1024 ** 3 })
    expect(DEFAULT_CONFIG.gossipHeartbeatMs).toBe(1000)
    expect(DEFAULT_CONFIG.syncIntervalMs).toBe(1000)
  })

  it('layers defaults < file < flags', async () => {
    const file = join(dir, 'c.json')
    await writeFile(file, JSON.stringify({ slots: 8, leaseMs: '2s', replicas: 3 }))
    const c = await loadConfig({ configFile: file, flags: { slots: '2', failureTimeout: '500ms', chunkSize: '64k', syncInterval: '250ms' } })
    expect(c.slots).toBe(2)
    expect(c.replicas).toBe(3)
    expect(c.leaseMs).toBe(2000)
    expect(c.failureTimeoutMs).toBe(500)
    expect(c.chunkSize).toBe(65536)
    expect(c.heartbeatMs).toBe(1000)
    expect(c.syncIntervalMs).toBe(250)
  })

  it('parses durations and sizes', () => {
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('250')).toBe(250)
    expect(parseDuration(1200)).toBe(1200)
    expect(parseBytes('2g')).toBe(2 * 1024 ** 3)
    expect(() => parseDuration('soon')).toThrow(/invalid duration/)
    expect(() => parseBytes('12q')).toThrow(/invalid size/)
  })

  it('names the bad flag and value', async () => {
    await expect(loadConfig({ flags: { slots: 'many' } })).rejects.toMatchObject({ name: 'ConfigError', key: '--slots', message: expect.stringContaining('"many"') })
    await expect(loadConfig({ flags: { lease: 'soon' } })).rejects.toMatchObject({ name: 'ConfigError', key: '--lease' })
    await expect(loadConfig({ flags: { listen: ['/ip4/nope'] } })).rejects.toMatchObject({ name: 'ConfigError', key: '--listen', message: expect.stringContaining('invalid multiaddr') })
    await expect(loadConfig({ flags: { apiPort: '70000' } })).rejects.toMatchObject({ name: 'ConfigError', key: '--api-port' })
  })

  it('names the bad key of a config file', async () => {
    const bad = join(dir, 'bad.json')
    await writeFile(bad, JSON.stringify({ slotz: 3 }))
    await expect(loadConfig({ configFile: bad })).rejects.toMatchObject({ name: 'ConfigError', key: 'slotz', message: expect.stringContaining('unknown setting "slotz"') })
    const notJson = join(dir, 'nj.json')
    await writeFile(notJson, '{ nope')
    await expect(loadConfig({ configFile: notJson })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringContaining('not valid JSON') })
    await expect(loadConfig({ configFile: join(dir, 'missing.json') })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringContaining('cannot read') })
    const wrongType = join(dir, 'wt.json')
    await writeFile(wrongType, JSON.stringify({ swarmKey: 3 }))
    await expect(loadConfig({ configFile: wrongType })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringContaining('swarmKey') })
    const gone = join(dir, 'gone.json')
    await writeFile(gone, JSON.stringify({ insecurePublic: true }))
    await expect(loadConfig({ configFile: gone })).rejects.toMatchObject({ name: 'ConfigError', message: expect.stringContaining('unknown setting "insecurePublic"') })
  })

  it('isolation and the function limits: defaults, flags, config keys, bad values', async () => {
    expect(await loadConfig()).toMatchObject({ isolation: 'process', maxMemoryMb: 4096, maxTimeoutMs: 900_000, maxRetries: 10 })
    const c = await loadConfig({ flags: { isolation: 'thread', maxMemory: '512', maxTimeout: '2m', maxRetries: '0' } })
    expect(c).toMatchObject({ isolation: 'thread', maxMemoryMb: 512, maxTimeoutMs: 120_000, maxRetries: 0 })
    const file = join(dir, 'limits.json')
    await writeFile(file, JSON.stringify({ isolation: 'thread', maxTimeoutMs: '30s' }))
    expect(await loadConfig({ configFile: file })).toMatchObject({ isolation: 'thread', maxTimeoutMs: 30_000 })
    await expect(loadConfig({ flags: { isolation: 'vm' } })).rejects.toMatchObject({ name: 'ConfigError', key: '--isolation', message: expect.stringContaining('expected one of process, thread') })
    await expect(loadConfig({ flags: { maxMemory: '0' } })).rejects.toMatchObject({ name: 'ConfigError', key: '--max-memory' })
    expect(configToArgs({ isolation: 'thread', maxMemoryMb: 512 })).toEqual(['--isolation', 'thread', '--max-memory', '512'])
  })

  it('turns settings back into flags', () => {
    expect(configToArgs({ slots: 2, leaseMs: 1500, swarmKey: '/k/swarm.key', announce: ['/ip4/10.0.0.1/tcp/4001'], bootstrap: ['/ip4/127.0.0.1/tcp/1'] }))
      .toEqual(['--slots', '2', '--lease', '1500', '--swarm-key', '/k/swarm.key', '--announce', '/ip4/10.0.0.1/tcp/4001', '--bootstrap', '/ip4/127.0.0.1/tcp/1'])
  })
})
