import { readdir } from 'node:fs/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { RecentPeak } from '../../node/executor/recent-peak.ts'
import { failure, run, spec, until } from './helpers.ts'

function gone (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

// reads its own module (allowed), then the first other file of the code cache it finds (must be refused)
const PROBE = `import { readFileSync, readdirSync } from 'node:fs'
export default async () => {
  const own = readFileSync(new URL(import.meta.url)).length > 0
  let other = 'read'
  try { readFileSync(CODE_FILE) } catch (err) { other = err.code }
  return { pid: process.pid, own, other }
}`

describe('executor: stem cells (instance processes booted ahead)', () => {
  let dir: string
  let pool: WorkerPool | undefined
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'dflow-cells-')) })
  afterEach(async () => {
    await pool?.stop()
    pool = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('a cold start takes a booted cell, which reads its own module and nothing else of the code cache', async () => {
    const codeDir = join(dir, 'code')
    pool = new WorkerPool({ slots: 2, isolation: 'process', codeDir, stemCells: 2 })
    const p = pool
    await run(p, 'export default async () => ({ v: 1 })', ['v']).result
    // the first start of a memory size finds no cell; afterwards the pool keeps two booted
    expect(p.stats().stemCellStarts).toBe(0)
    await until(() => p.stats().stemCells === 2)
    const cells = p.stemCellPids()
    expect(cells).toHaveLength(2)
    const first = (await readdir(codeDir)).find(f => f.endsWith('.mjs')) as string
    const { rec, result } = run(p, PROBE.replace('CODE_FILE', JSON.stringify(join(codeDir, first))), ['pid', 'own', 'other'])
    await result
    expect(p.stats().stemCellStarts).toBe(1)
    expect(cells).toContain(rec.outputs.pid)
    expect(rec.outputs.own).toBe(true)
    expect(rec.outputs.other).toBe('ERR_ACCESS_DENIED')
    // the cell is that module's instance now: warm on the next invocation
    const again = run(p, PROBE.replace('CODE_FILE', JSON.stringify(join(codeDir, first))), ['pid', 'own', 'other'])
    await again.result
    expect(again.rec.outputs.pid).toBe(rec.outputs.pid)
    expect(p.stats().warmStarts).toBe(1)
  })

  it('a module that fails to load in a cell fails its step with ModuleLoadError; other cells are kept', async () => {
    pool = new WorkerPool({ slots: 2, isolation: 'process', codeDir: join(dir, 'code'), stemCells: 2 })
    const p = pool
    await run(p, 'export default async () => ({ v: 1 })', ['v']).result
    await until(() => p.stats().stemCells === 2)
    const err = await failure(run(p, 'throw new Error("bad module")\nexport default async () => ({})', []).result)
    expect(err.name).toBe('ModuleLoadError')
    expect(err.message).toContain('bad module')
    expect(p.stats().stemCellStarts).toBe(1)
    await until(() => p.stats().stemCells === 2)
    const { rec, result } = run(p, 'export default async () => ({ v: 2 })', ['v'])
    await result
    expect(rec.outputs.v).toBe(2)
    expect(p.stats().stemCellStarts).toBe(2)
  })

  it('cells are kept per memory size: a step of another size starts a process of its own', async () => {
    pool = new WorkerPool({ slots: 2, isolation: 'process', codeDir: join(dir, 'code'), stemCells: 1 })
    const p = pool
    await run(p, spec('export default async () => ({ v: 1 })', 64), ['v']).result
    await until(() => p.stats().stemCells === 1)
    await run(p, spec('export default async () => ({ v: 2 })', 96), ['v']).result
    expect(p.stats().stemCellStarts).toBe(0)
    await run(p, spec('export default async () => ({ v: 3 })', 64), ['v']).result
    expect(p.stats().stemCellStarts).toBe(1)
  })

  it('stop() ends every cell and removes their directories', async () => {
    const codeDir = join(dir, 'code')
    pool = new WorkerPool({ slots: 2, isolation: 'process', codeDir, stemCells: 3 })
    const p = pool
    await run(p, 'export default async () => ({ v: 1 })', ['v']).result
    await until(() => p.stats().stemCells === 3)
    const pids = p.stemCellPids()
    expect((await readdir(codeDir)).filter(f => f.startsWith('cells-'))).toHaveLength(1)
    await p.stop()
    pool = undefined
    for (const pid of pids) expect(gone(pid)).toBe(true)
    expect((await readdir(codeDir)).filter(f => f.startsWith('cells-'))).toEqual([])
  })

  it('none without stemCells, and none under thread isolation', async () => {
    for (const opts of [{ isolation: 'process' as const }, { isolation: 'thread' as const, stemCells: 4 }]) {
      const p = new WorkerPool({ slots: 2, codeDir: join(dir, `code-${opts.isolation}`), ...opts })
      try {
        await run(p, 'export default async () => ({ v: 1 })', ['v']).result
        await new Promise(resolve => setTimeout(resolve, 300))
        expect(p.stats().stemCells).toBe(0)
      } finally {
        await p.stop()
      }
    }
  })
})

describe('RecentPeak', () => {
  it('keeps the largest value of this window and the one before, then forgets it', () => {
    let now = 0
    const peak = new RecentPeak(1000, () => now)
    peak.note(3)
    peak.note(7)
    peak.note(5)
    expect(peak.peak()).toBe(7)
    now = 1500
    peak.note(2)
    expect(peak.peak()).toBe(7)
    now = 2600
    expect(peak.peak()).toBe(2)
    now = 6000
    expect(peak.peak()).toBe(0)
  })
})
