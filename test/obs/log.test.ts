import { describe, expect, it, afterEach } from 'vitest'
import { disable, enable } from '@libp2p/logger'
import { dflowLogger, formatMessage, warn } from '../../node/util/log.ts'
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatEntry, lineTime, mergeLogs, parseLog, streamLogs, type LogEntry } from '../../testnet/logs.ts'
import type { Manifest } from '../../testnet/manifest.ts'

const PEER = '12D3KooWBqDd8gapz56gxF1adkihzbDTuk7jazTnQND1h8uBRqpr'

function capture (format: 'text' | 'json' = 'text'): { lines: string[], logger: ReturnType<typeof dflowLogger> } {
  const lines: string[] = []
  return { lines, logger: dflowLogger({ peer: PEER, format, write: l => { lines.push(l) } }) }
}

describe('dflow logger', () => {
  afterEach(() => { disable() })

  it('always writes errors and warnings of dflow components, with the component name; detail only under DEBUG', () => {
    disable()
    const { lines, logger } = capture()
    const log = logger.forComponent('dflow:scheduler')
    log('detail %s', 'hidden')
    log.trace('trace hidden')
    log.error('claim of %s failed: %s', 'step-a', 'boom')
    warn(log, 'slow peer %d ms', 1200)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR 12D3…uBRqpr dflow:scheduler: claim of step-a failed: boom\n$/)
    expect(lines[1]).toMatch(/ WARN {2}12D3…uBRqpr dflow:scheduler: slow peer 1200 ms\n$/)
  })

  it('leaves libp2p\'s own errors to its DEBUG convention', () => {
    disable()
    const { lines, logger } = capture()
    logger.forComponent('libp2p:dialer').error('dial failed')
    expect(lines).toEqual([])
    enable('libp2p:dialer:error')
    logger.forComponent('libp2p:dialer').error('dial failed')
    expect(lines).toHaveLength(1)
  })

  it('DEBUG=dflow:* adds the detail lines, matched without the peer prefix', () => {
    enable('dflow:*')
    const { lines, logger } = capture()
    const log = logger.forComponent('dflow:store')
    expect(log.enabled).toBe(true)
    log('put %s (%d bytes)', 'bafy', 12)
    log.newScope('fetch')('got it')
    expect(lines.map(l => l.replace(/^\S+ /, ''))).toEqual(['DEBUG 12D3…uBRqpr dflow:store: put bafy (12 bytes)\n', 'DEBUG 12D3…uBRqpr dflow:store:fetch: got it\n'])
    expect(logger.forComponent('libp2p:tcp').enabled).toBe(false)
  })

  it('--log-format json writes one JSON object per line, with the full PeerId', () => {
    disable()
    const { lines, logger } = capture('json')
    const err = new Error('multi\nline')
    logger.forComponent('dflow:api').error('GET / failed: %e', err)
    expect(lines).toHaveLength(1)
    expect(lines[0].endsWith('\n')).toBe(true)
    expect(lines[0].slice(0, -1)).not.toContain('\n')
    const obj = JSON.parse(lines[0])
    expect(obj).toMatchObject({ level: 'error', component: 'dflow:api', peer: PEER })
    expect(obj.msg).toContain('GET / failed: Error: multi\nline')
    expect(Number.isNaN(Date.parse(obj.ts))).toBe(false)
  })

  it('formats the printf directives libp2p code uses', () => {
    expect(formatMessage('%s=%d %j %%', ['a', 3, { x: 1 }])).toBe('a=3 {"x":1} %')
    expect(formatMessage('%p %c', [{ toString: () => 'PEER' }, { toString: () => 'CID' }])).toBe('PEER CID')
    expect(formatMessage('%b', [new Uint8Array([0, 1])])).toBe('12')
    expect(formatMessage('no args %s', [])).toBe('no args %s')
    expect(formatMessage('extra', ['a', 2])).toBe('extra a 2')
  })
})

describe('dflow testnet logs: merging peer logs', () => {
  it('reads the time of text and JSON lines, carries it to lines without one, and merges stably in time order', () => {
    expect(lineTime('2026-12-01T04:00:00.500Z ERROR x: y')).toBe(Date.parse('2026-12-01T04:00:00.500Z'))
    expect(lineTime('{"ts":"2026-12-01T04:00:01.000Z","level":"debug"}')).toBe(Date.parse('2026-12-01T04:00:01.000Z'))
    expect(lineTime('    at frame (file.ts:1:1)')).toBeUndefined()
    const a = parseLog('peer 12D3\n2026-12-01T04:00:00.000Z ERROR a: first\n    at stack\n2026-12-01T04:00:02.000Z WARN  a: third\n', 0).entries
    const b = parseLog('{"ts":"2026-12-01T04:00:01.000Z","msg":"second"}\n{"ts":"2026-12-01T04:00:02.000Z","msg":"fourth"}\n', 1).entries
    const merged = mergeLogs([a, b]).map(formatEntry)
    expect(merged).toEqual([
      'peer-0 | peer 12D3',
      'peer-0 | 2026-12-01T04:00:00.000Z ERROR a: first',
      'peer-0 |     at stack',
      'peer-1 | {"ts":"2026-12-01T04:00:01.000Z","msg":"second"}',
      'peer-0 | 2026-12-01T04:00:02.000Z WARN  a: third',
      'peer-1 | {"ts":"2026-12-01T04:00:02.000Z","msg":"fourth"}'
    ])
  })

  it('--follow prints lines as the logs grow, a partial line once complete, until aborted; --peer keeps one log', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-logs-'))
    try {
      const peer = (index: number): Manifest['peers'][number] => ({ index, peerId: `p${index}`, multiaddrs: [], api: '', pid: 0, dataDir: dir, log: join(dir, `peer-${index}.log`) })
      const manifest: Manifest = { status: 'up', flags: [], peers: [peer(0), peer(1)] }
      await writeFile(manifest.peers[0].log, '2026-12-01T04:00:00.000Z ERROR a: zero\n')
      await writeFile(manifest.peers[1].log, '')
      const got: LogEntry[] = []
      const controller = new AbortController()
      const done = streamLogs(manifest, e => { got.push(e) }, { follow: true, signal: controller.signal, pollMs: 20 })
      const until = async (n: number): Promise<void> => { for (let i = 0; i < 200 && got.length < n; i++) await new Promise(resolve => setTimeout(resolve, 10)) }
      await until(1)
      await appendFile(manifest.peers[1].log, '2026-12-01T04:00:01.000Z WARN  b: one\n2026-12-01T04:00:02.000Z WARN  b: tw')
      await until(2)
      await appendFile(manifest.peers[1].log, 'o\n')
      await until(3)
      controller.abort()
      await done
      expect(got.map(formatEntry)).toEqual([
        'peer-0 | 2026-12-01T04:00:00.000Z ERROR a: zero',
        'peer-1 | 2026-12-01T04:00:01.000Z WARN  b: one',
        'peer-1 | 2026-12-01T04:00:02.000Z WARN  b: two'
      ])
      const only: LogEntry[] = []
      await streamLogs(manifest, e => { only.push(e) }, { peer: 1 })
      expect(only.map(e => e.peer)).toEqual([1, 1])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
