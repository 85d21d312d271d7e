import { describe, it, expect } from 'vitest'
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { WorkerPool } from '../../node/executor/pool.ts'
import { run } from './helpers.ts'

describe('executor: a typed, bundled function', () => {
  it('runs a StepContext-typed .ts export bundled with esbuild (the dflow type import is erased)', async () => {
    const out = await build({
      entryPoints: [fileURLToPath(new URL('./fixtures/typed-step.ts', import.meta.url))],
      bundle: true, format: 'esm', platform: 'node', write: false
    })
    const code = out.outputFiles[0].text
    expect(code).not.toContain('node/index.ts')
    const pool = new WorkerPool()
    try {
      const { rec, result } = run(pool, { code: { cid: 'typed-' + Date.now(), code }, memoryMb: 64 }, ['upper', 'chars'], {
        exportName: 'typedStep', inputs: { s: 'abc' }, step: { name: 'typed', index: 0 }
      })
      const r = await result
      expect(rec.outputs.upper).toBe('ABC')
      expect(rec.emits.chars).toEqual([3])
      expect(r.streams).toEqual({ chars: 1 })
      expect(rec.logs).toContain('step typed index 0')
    } finally {
      await pool.stop()
    }
  })
})
