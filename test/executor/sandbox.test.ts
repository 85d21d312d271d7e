import { createHash } from 'node:crypto'
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../node/executor/pool.ts'
import { CodeCache } from '../../node/executor/code-cache.ts'
import { processChannel, threadChannel } from '../../node/executor/channels.ts'
import { permissionFlag } from '../../node/executor/sandbox.ts'
import { failure, run, spec } from './helpers.ts'
import { MALLOC_TUNABLES } from '../../node/util/malloc-tunables.ts'

describe('executor: process isolation (the sandbox)', () => {
  let dir: string
  let secret: string
  let pool: WorkerPool
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dflow-sandbox-'))
    secret = join(dir, 'peer.key')
    await writeFile(secret, 'the peer private key')
    pool = new WorkerPool({ slots: 2, isolation: 'process', codeDir: join(dir, 'code') })
  })
  afterAll(async () => {
    await pool.stop()
    expect(pool.stats().instances).toBe(0)
    await rm(dir, { recursive: true, force: true })
  })

  it('the permission flag is --experimental-permission before Node 22.13 and --permission from it on', () => {
    expect(permissionFlag({ ...process.versions, node: '20.19.0' })).toBe('--experimental-permission')
    expect(permissionFlag({ ...process.versions, node: '22.12.0' })).toBe('--experimental-permission')
    expect(permissionFlag({ ...process.versions, node: '22.13.0' })).toBe('--permission')
    expect(permissionFlag({ ...process.versions, node: '24.1.0' })).toBe('--permission')
  })

  it.each([
    ['read a file of the peer', `import { readFileSync } from 'node:fs'; export default async () => { readFileSync(${JSON.stringify('SECRET')}) }`],
    ['list a directory', `import { readdirSync } from 'node:fs'; export default async () => { readdirSync('/') }`],
    ['write a file', `import { writeFileSync } from 'node:fs'; export default async () => { writeFileSync(${JSON.stringify('SECRET')} + '.x', 'x') }`],
    ['spawn a process', `import { execFileSync } from 'node:child_process'; export default async () => { execFileSync('/bin/true') }`],
    ['start a worker', `import { Worker } from 'node:worker_threads'; export default async () => { new Worker('process.exit(0)', { eval: true }) }`]
  ])('a function cannot %s: the step fails with the access error, the peer is untouched', async (_what, template) => {
    const code = template.replaceAll('SECRET', secret)
    const err = await failure(run(pool, code, []).result)
    expect(err.name).toBe('FunctionError')
    expect(err.message).toMatch(/Access to this API has been restricted/)
    expect((await stat(secret)).size).toBe(20)
    await expect(stat(secret + '.x')).rejects.toThrow()
  })

  it('a function sees no environment of the peer, only glibc\'s malloc settings', async () => {
    process.env.DFLOW_SANDBOX_PROBE = 'secret'
    const { rec, result } = run(pool, 'export default async () => ({ env: process.env.DFLOW_SANDBOX_PROBE ?? null, all: Object.keys(process.env), tunables: process.env.GLIBC_TUNABLES ?? null })', ['env', 'all', 'tunables'])
    await result
    expect(rec.outputs.env).toBeNull()
    expect(rec.outputs.all).toEqual(['GLIBC_TUNABLES'])
    expect(rec.outputs.tunables).toBe(MALLOC_TUNABLES)
    delete process.env.DFLOW_SANDBOX_PROBE
  })

  it('memory is capped in whole: a Buffer hog (outside the V8 heap) fails with StepOutOfMemoryError', async () => {
    const code = `export default async (ctx) => {
      const keep = []
      for (;;) { keep.push(Buffer.alloc(8 * 1024 * 1024, 1)); await new Promise(r => setImmediate(r)) }
    }`
    const err = await failure(run(pool, spec(code, 48), [], { step: { name: 'bufs', index: null } }).result)
    expect(err.name).toBe('StepOutOfMemoryError')
    expect(err.message).toContain('step bufs')
    expect(err.memoryMb).toBe(48)
    // a synchronous hog (no await: the host-side watchdog cannot rely on the child's event loop)
    const sync = 'export default async () => { const keep = []; for (;;) keep.push(Buffer.alloc(8 * 1024 * 1024, 1)) }'
    expect((await failure(run(pool, spec(sync, 48), []).result)).name).toBe('StepOutOfMemoryError')
    const { rec, result } = run(pool, 'export default async () => ({ v: 1 })', ['v'])
    await result
    expect(rec.outputs.v).toBe(1)
  })

  it('the code cache is a 0700 directory of files named by the sha256 of their code', async () => {
    const code = 'export default async () => ({ v: "cached" })'
    await run(pool, code, ['v']).result
    const st = await stat(join(dir, 'code'))
    expect(st.mode & 0o777).toBe(0o700)
    const sha = createHash('sha256').update(code).digest('hex')
    const files = await readdir(join(dir, 'code'))
    expect(files).toContain(`${sha}.mjs`)
    expect(files.filter(f => f.endsWith('.tmp'))).toEqual([])
  })

  it('a cached file changed on disk is replaced before it is loaded (a new peer on the same data dir)', async () => {
    const code = 'export default async () => ({ v: "genuine" })'
    const sha = createHash('sha256').update(code).digest('hex')
    const file = join(dir, 'code', `${sha}.mjs`)
    await run(pool, code, ['v']).result
    await chmod(file, 0o600)
    await writeFile(file, 'export default async () => ({ v: "tampered" })')
    const other = new WorkerPool({ isolation: 'process', codeDir: join(dir, 'code') })
    try {
      const { rec, result } = run(other, code, ['v'])
      await result
      expect(rec.outputs.v).toBe('genuine')
    } finally {
      await other.stop()
    }
  })

  it.each(['thread', 'process'] as const)('an instance (%s) refuses a module file that does not match its hash', async (isolation) => {
    const cache = new CodeCache(join(dir, 'verify'))
    const code = await cache.file({ cid: 'x', code: 'export default () => {}' })
    const msgs: any[] = []
    await new Promise<void>(resolve => {
      const open = isolation === 'process' ? processChannel : threadChannel
      const ch = open({
        code: { file: code.file, sha256: '0'.repeat(64) },
        memoryMb: 64,
        handlers: { message: m => { msgs.push(m); void ch.kill() }, failure: () => {}, exit: () => { resolve() } }
      })
    })
    expect(msgs[0]).toMatchObject({ type: 'load-error' })
    expect(msgs[0].message).toMatch(/does not match its hash/)
    await cache.close()
  })

  it('invocations over the pool limits are refused with LimitError', async () => {
    const limited = new WorkerPool({ isolation: 'process', limits: { maxMemoryMb: 128, maxTimeoutMs: 1000 } })
    try {
      const mem = await failure(run(limited, spec('export default () => {}', 256), []).result)
      expect(mem.name).toBe('LimitError')
      expect(mem.message).toMatch(/memory 256 MiB exceeds this peer's limit of 128 MiB \(--max-memory\)/)
      const time = await failure(run(limited, 'export default () => {}', [], { timeoutMs: 5000 }).result)
      expect(time.message).toMatch(/timeout 5000 ms exceeds this peer's limit of 1000 ms \(--max-timeout\)/)
      expect(limited.stats().instances).toBe(0)
    } finally {
      await limited.stop()
    }
  })
})

describe('limits: a workflow over a peer\'s limits is refused at every load', () => {
  it('the loader refuses it with a LimitError naming each step and limit; within the limits it loads', async () => {
    const { EmbeddedPeer } = await import('../../node/engine/embedded.ts')
    const { BundleLoader } = await import('../../node/dscheduler/loader.ts')
    const { loadWorkflow } = await import('../../node/workflow/index.ts')
    const peer = await EmbeddedPeer.create()
    try {
      const file = await loadWorkflow(new URL('../workflow/fixtures/complex.yaml', import.meta.url).pathname)
      const strict = new BundleLoader(peer.store, { maxMemoryMb: 64, maxTimeoutMs: 1000, maxRetries: 1 })
      const cid = await strict.register(file)
      const err = await strict.load(cid, []).then(() => undefined, (e: Error) => e)
      expect(err?.name).toBe('LimitError')
      expect(err?.message).toMatch(/memory 128 MiB exceeds this peer's limit of 64 MiB \(--max-memory\)/)
      expect(err?.message).toMatch(/retries 2 exceeds this peer's limit of 1 \(--max-retries\)/)
      expect(err?.message).toMatch(/timeout 120000 ms exceeds this peer's limit of 1000 ms \(--max-timeout\)/)
      const lenient = new BundleLoader(peer.store, { maxMemoryMb: 256, maxTimeoutMs: 120_000, maxRetries: 2 })
      await lenient.register(file)
      expect((await lenient.load(cid, [])).cid).toBe(cid)
    } finally {
      await peer.stop()
    }
  })
})

describe('the host does not trust what an instance posts', () => {
  it.each(['thread', 'process'] as const)('(%s) forged messages from user code are checked again: undeclared names, bad values, forged stream counts', async (isolation) => {
    const pool = new WorkerPool({ isolation })
    // user code that talks to the host directly, past ctx
    const poster = isolation === 'process'
      ? 'const send = (m) => process.send(m)'
      : 'import { parentPort } from "node:worker_threads"; const send = (m) => parentPort.postMessage(m)'
    try {
      // the invocation id is not known to user code: it tries the plausible ones
      const code = `${poster}
        export default async (ctx) => { for (let i = 0; i < 1000; i++) send({ type: 'output', inv: i, name: 'secret', value: 1 }); await new Promise(r => setTimeout(r, 5000)) }`
      const err = await failure(run(pool, code, ['v']).result)
      expect(err.name).toBe('OutputError')
      expect(err.message).toMatch(/"secret": is not declared/)

      const forgeDone = `${poster}
        export default async (ctx) => { for (let i = 0; i < 1000; i++) send({ type: 'done', inv: i, startedAt: 'x', endedAt: null, streams: { s: 1e9 } }); await new Promise(r => setTimeout(r, 5000)) }`
      const done = await failure(run(pool, forgeDone, ['s']).result)
      expect(done.name).toBe('OutputError')
      expect(done.message).toMatch(/"s": declared but never produced/)

      const { rec, result } = run(pool, `${poster}
        export default async (ctx) => { ctx.emit('s', 1); for (let i = 0; i < 1000; i++) send({ type: 'done', inv: i, startedAt: 1, endedAt: 2, streams: { s: 1e9 } }); await new Promise(r => setTimeout(r, 5000)) }`, ['s'])
      const r = await result
      expect(r.streams).toEqual({ s: 1 })
      expect(rec.emits.s).toEqual([1])
    } finally {
      await pool.stop()
    }
  })
})
