/**
 * A tiny, sequential interpreter of the workflow format for these tests only: it checks that the example and
 * generated workflows are consistent (refs, foreach, when, oneOf, declared outputs) and give the right results
 * when their functions are called with a fake context. The real engine's end-to-end tests are the lead's.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parse } from 'yaml'
import { isDeepStrictEqual } from 'node:util'
import { fakeContext } from './fake-context.ts'
import type { Value } from '../../node/values/codec.ts'

type Src = string | { oneOf: string[] }
interface Step { run: string, in?: Record<string, Src>, out: string[], foreach?: string, when?: { ref: string, equals?: unknown, in?: unknown[] } }
interface Doc { name: string, inputs: string[], outputs: Record<string, Src>, steps: Record<string, Step> }

export interface RunResult { outputs: Record<string, Value>, status: Record<string, 'ok' | 'skipped'>, order: string[] }

export async function runWorkflow (file: string, inputs: Record<string, Value>): Promise<RunResult> {
  const doc = parse(readFileSync(file, 'utf8')) as Doc
  const values = new Map<string, Value>()
  const status: Record<string, 'ok' | 'skipped'> = {}
  const order: string[] = []
  for (const n of doc.inputs) {
    if (!(n in inputs)) throw new Error(`missing input ${n}`)
    values.set(`inputs.${n}`, inputs[n])
  }
  const stepOf = (ref: string): string => ref.split('.')[0]
  const known = (ref: string): boolean => ref.startsWith('$') || ref.startsWith('inputs.') || status[stepOf(ref)] != null
  const isSkipped = (ref: string): boolean => status[stepOf(ref)] === 'skipped'
  const refsOf = (s: Step): string[] => [
    ...Object.values(s.in ?? {}).flatMap(v => (typeof v === 'string' ? [v] : v.oneOf)),
    ...(s.foreach != null ? [s.foreach] : []), ...(s.when != null ? [s.when.ref] : [])
  ]
  const get = (ref: string): Value => {
    if (!values.has(ref)) throw new Error(`${doc.name}: ref ${ref} has no value (undeclared or never produced)`)
    return values.get(ref) as Value
  }
  const names = Object.keys(doc.steps)
  while (order.length < names.length) {
    const name = names.find(n => status[n] == null && refsOf(doc.steps[n]).every(known))
    if (name == null) throw new Error(`${doc.name}: stuck (cycle or unknown ref) after ${order.join(', ')}`)
    const s = doc.steps[name]
    order.push(name)
    let skip = refsOf(s).some(r => !r.startsWith('$') && isSkipped(r) && !Object.values(s.in ?? {}).some(v => typeof v !== 'string' && v.oneOf.includes(r)))
    const params: Record<string, Value> = {}
    for (const [p, src] of Object.entries(s.in ?? {})) {
      if (typeof src === 'string') { if (!src.startsWith('$') && !isSkipped(src)) params[p] = get(src); continue }
      const ran = src.oneOf.find(r => !isSkipped(r))
      if (ran == null) skip = true
      else params[p] = get(ran)
    }
    if (!skip && s.when != null) {
      const v = get(s.when.ref)
      skip = s.when.in != null ? !s.when.in.some(x => isDeepStrictEqual(x, v)) : !isDeepStrictEqual(s.when.equals, v)
    }
    if (skip) { status[name] = 'skipped'; continue }
    const [path, exp = 'default'] = s.run.split('#')
    const mod = await import(pathToFileURL(resolve(dirname(file), path)).href) as Record<string, (ctx: unknown) => unknown>
    if (typeof mod[exp] !== 'function') throw new Error(`${doc.name}.${name}: export ${exp} is not a function`)
    const items = s.foreach != null ? get(s.foreach) : null
    if (items != null && !Array.isArray(items)) throw new Error(`${doc.name}.${name}: foreach over a non-list`)
    const instances = items == null ? [null] : items.map((_, i) => i)
    const results: Array<Record<string, Value>> = []
    for (const i of instances) {
      const p = { ...params }
      for (const [k, src] of Object.entries(s.in ?? {})) {
        if (src === '$item') p[k] = (items as Value[])[i as number]
        if (src === '$index') p[k] = i
      }
      const out = await fakeContext(p, { step: name, index: i }).run(mod[exp] as never)
      const got = Object.keys(out).sort()
      if (!isDeepStrictEqual(got, [...s.out].sort())) throw new Error(`${doc.name}.${name}: produced [${got.join(', ')}], declared [${s.out.join(', ')}]`)
      results.push(out)
    }
    for (const o of s.out) values.set(`${name}.${o}`, items == null ? results[0][o] : results.map(r => r[o]))
    status[name] = 'ok'
  }
  const outputs: Record<string, Value> = {}
  for (const [k, src] of Object.entries(doc.outputs)) {
    const ran = (typeof src === 'string' ? [src] : src.oneOf).find(r => !isSkipped(r))
    outputs[k] = ran == null ? null : get(ran)
  }
  return { outputs, status, order }
}
