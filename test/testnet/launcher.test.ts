import { describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { asciiOnly, peerBundle } from '../../testnet/bundle.ts'
import { buildCliBundle, freshCliBundle } from '../../bin/cli-bundle.mjs'
import { spawnSync } from 'node:child_process'
import { statSync, utimesSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { PEER_NODE_FLAGS, peerNodeArgs, tierUpFlags } from '../../testnet/launcher.ts'

describe('testnet launcher: what a peer process runs with', () => {
  it('node flags: PEER_NODE_FLAGS first, then DFLOW_PEER_NODE_ARGS', () => {
    const saved = process.env.DFLOW_PEER_NODE_ARGS
    try {
      process.env.DFLOW_PEER_NODE_ARGS = ' --cpu-prof  --max-semi-space-size=4 '
      expect(peerNodeArgs()).toEqual([...PEER_NODE_FLAGS, '--cpu-prof', '--max-semi-space-size=4'])
    } finally {
      if (saved === undefined) delete process.env.DFLOW_PEER_NODE_ARGS
      else process.env.DFLOW_PEER_NODE_ARGS = saved
    }
  })

  it('this node accepts every peer flag (an unknown V8 flag stops node before the peer starts)', () => {
    const r = spawnSync(process.execPath, [...PEER_NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('the tier-up flag only where V8 has it', () => {
    expect(tierUpFlags('11.3.244.8-node.33')).toEqual(['--ticks-before-optimization=20'])
    expect(tierUpFlags('12.4.254.21-node.33')).toEqual([])
  })

  it('the peer bundle is ASCII-only, so V8 keeps its source as a one-byte string; escapes read the same', () => {
    const src = '/* W−1 ⋅ 2 — x */ const s = "é😀"'
    const out = asciiOnly(src)
    expect(/[^\x00-\x7f]/.test(out)).toBe(false)
    expect(out).toBe('/* W\\u22121 \\u22c5 2 \\u2014 x */ const s = "\\u00e9\\ud83d\\ude00"')
    expect(new Function(out + '; return s')()).toBe('é😀')
  })

  it('the bundle peers run from has no non-ASCII character left', async () => {
    const file = await peerBundle(() => {})
    expect(file).toBeDefined()
    const text = await readFile(file as string, 'utf8')
    expect(text.length).toBeGreaterThan(100_000)
    expect(text.match(/[^\x00-\x7f]/)?.[0]).toBeUndefined()
  }, 120_000)

  it('the CLI bundle is reused while its sources are unchanged and not once one of them changes; dflow runs from it or through tsx alike', async () => {
    const file = await buildCliBundle()
    expect(freshCliBundle()).toBe(file)
    const main = fileURLToPath(new URL('../../node/cli/main.ts', import.meta.url))
    const { atime, mtime } = statSync(main)
    try {
      utimesSync(main, atime, new Date(mtime.getTime() + 5000))
      expect(freshCliBundle()).toBeUndefined()
    } finally {
      utimesSync(main, atime, mtime)
      await buildCliBundle()
    }
    expect(freshCliBundle()).toBe(file)
    const bin = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))
    // DFLOW_SHOW_LOADER makes bin/dflow.js say which way it loaded
    const env = { ...process.env, DFLOW_SHOW_LOADER: '1' }
    const viaBundle = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', timeout: 60_000, env })
    const viaTsx = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', timeout: 60_000, env: { ...env, DFLOW_NO_BUNDLE: '1' } })
    expect(viaBundle.status).toBe(0)
    expect(viaBundle.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
    expect(viaBundle.stderr).toContain(`dflow: CLI bundle ${file as string}`)
    expect(viaTsx.stderr).toContain('dflow: CLI sources through tsx')
    expect(viaTsx.stdout).toBe(viaBundle.stdout)
  }, 120_000)
})
