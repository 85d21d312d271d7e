/**
 * Instances pre-warmed for a request are held while it runs: a short idleMs (`--idle-instance`) must not retire
 * them before the request's later steps fire, or those steps meet the cold start that pre-warming was for. Once
 * the request releases them, the idle timeout applies again (counted from when they went idle, not from the
 * release).
 */
import { describe, it, expect, afterEach } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { run, spec } from './helpers.ts'

const TRIVIAL = 'export default async (ctx) => ({ v: 1 })'
const IDLE_MS = 150
const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

async function until (cond: () => boolean, ms = 10_000): Promise<void> {
  for (const t0 = Date.now(); !cond() && Date.now() - t0 < ms;) await sleep(20)
}

describe('executor: instances pre-warmed for a request are held until it ends', () => {
  const pools: WorkerPool[] = []
  const make = (): WorkerPool => {
    const p = new WorkerPool({ isolation: 'thread', idleMs: IDLE_MS, slots: 4 })
    pools.push(p)
    return p
  }
  afterEach(async () => { for (const p of pools.splice(0)) await p.stop() })

  it('a held instance outlives idleMs while its request runs, and retires once released', async () => {
    const pool = make()
    const held = spec(TRIVIAL + ' // held')
    const free = spec(TRIVIAL + ' // not held')
    await Promise.all([pool.prewarm(held, 2, 'req-A'), pool.prewarm(free, 1)])
    expect(pool.stats().instanceStarts).toBe(3)
    // the unheld one goes after idleMs as before; the held ones stay however long the request runs
    await until(() => pool.stats().instances === 2)
    await sleep(IDLE_MS * 4)
    expect(pool.stats()).toMatchObject({ instances: 2, idle: 2, heldIdle: 2 })
    // a step of the request fires late and finds its instance warm
    expect((await run(pool, held, ['v']).result).coldStartMs).toBe(0)

    pool.release('req-A')
    expect(pool.stats().heldIdle).toBe(0)
    await until(() => pool.stats().instances === 0)
    expect(pool.stats()).toMatchObject({ instances: 0, heldIdle: 0 })
  })

  it('holds at most the count asked for, and as long as any holder still wants them', async () => {
    const pool = make()
    const s = spec(TRIVIAL + ' // counted')
    // the holds are taken before any instance is ready (so before any idle timer runs): 1 + 2 of 3 instances
    await Promise.all([pool.prewarm(s, 1, 'req-A'), pool.prewarm(s, 2, 'req-B'), pool.prewarm(s, 3)])
    expect(pool.stats().instanceStarts).toBe(3)
    await sleep(IDLE_MS * 3)
    expect(pool.stats().instances).toBe(3)
    pool.release('req-B')
    await until(() => pool.stats().instances === 1)
    await sleep(IDLE_MS * 3)
    expect(pool.stats()).toMatchObject({ instances: 1, idle: 1, heldIdle: 1 })
    pool.release('req-A')
    await until(() => pool.stats().instances === 0)
    expect(pool.stats().instances).toBe(0)
    expect(pool.stats().instanceStarts).toBe(3)
  })

  it('a release of a holder that holds nothing, or twice, changes nothing', async () => {
    const pool = make()
    const s = spec(TRIVIAL + ' // twice')
    await pool.prewarm(s, 1, 'req-A')
    pool.release('req-B')
    pool.release('req-A')
    pool.release('req-A')
    await until(() => pool.stats().instances === 0)
    expect(pool.stats().instances).toBe(0)
  })
})
