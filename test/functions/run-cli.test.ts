import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exampleWorkflows } from '../../functions/benchmarks/index.ts'

const BIN = fileURLToPath(new URL('../../bin/dflow.js', import.meta.url))

async function dflow (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

const inputArgs = (inputs: Record<string, unknown>): string[] =>
  Object.entries(inputs).flatMap(([k, v]) => ['--input', `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`])

describe('dflow run (CLI)', () => {
  for (const ex of exampleWorkflows) {
    for (const mode of ['dataflow', 'control']) {
      it(`${ex.name} in ${mode} mode gives the right answer`, async () => {
        const r = await dflow(['run', ex.path, ...inputArgs(ex.inputs), '--mode', mode, '--json'])
        expect(r.code, r.stderr).toBe(0)
        const out = JSON.parse(r.stdout)
        expect(Object.keys(out)).toEqual(['requestId', 'status', 'outputs', 'steps', 'totalMs'])
        expect(out.status).toBe('ok')
        expect(out.outputs).toMatchObject(ex.expect)
        for (const s of out.steps) expect(Object.keys(s)).toEqual(['name', 'index', 'peer', 'status', 'coldStartMs', 'readyMs', 'startMs', 'endMs'])
      })
    }
  }

  it('a workflow nobody has seen, with a plain .js module, runs; --bytes passes a Uint8Array', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-new-'))
    await writeFile(join(dir, 'f.js'), `
export async function size (ctx) { const b = await ctx.input('blob'); return { n: b.length, first: b[0] } }
export default async function echo (ctx) { ctx.output('back', await ctx.input('x')) }
`)
    await writeFile(join(dir, 'flow.yaml'), `name: fresh
inputs: [blob, x]
outputs: { n: size.n, first: size.first, back: echo.back }
steps:
  size: { run: ./f.js#size, in: { blob: inputs.blob }, out: [n, first] }
  echo: { run: ./f.js, in: { x: inputs.x }, out: [back] }
`)
    await writeFile(join(dir, 'blob.bin'), new Uint8Array([7, 8, 9]))
    const r = await dflow(['run', join(dir, 'flow.yaml'), '--bytes', `blob=@${join(dir, 'blob.bin')}`, '--input', 'x={"a":[1,"two"]}', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).outputs).toEqual({ n: 3, first: 7, back: { a: [1, 'two'] } })
  })

  it('exit codes: 2 with {"status":"invalid"} for an invalid workflow, 1 for a failed request', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dflow-bad-'))
    await writeFile(join(dir, 'bad.yaml'), 'name: bad\nsteps:\n  a: { run: ./nope.js, in: { x: inputs.missing }, out: [y] }\n')
    const bad = await dflow(['run', join(dir, 'bad.yaml'), '--json'])
    expect(bad.code).toBe(2)
    expect(JSON.parse(bad.stdout)).toMatchObject({ status: 'invalid', error: expect.stringContaining('bad.yaml') })
    const failing = await dflow(['run', fileURLToPath(new URL('../dscheduler/fixtures/failing.yaml', import.meta.url)), '--json'])
    expect(failing.code).toBe(1)
    expect(JSON.parse(failing.stdout)).toMatchObject({ status: 'failed', error: expect.stringContaining('kaboom') })
  })
})
