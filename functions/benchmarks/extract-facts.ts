/**
 * One-off extraction: reads the reference FaaSFlow workflow descriptions (a folder of <name>.yaml files kept
 * outside the project) and writes the facts the generator needs to functions/benchmarks/facts.json, which is
 * committed. Nothing runs this at build, run or test time; the project never reads the reference files.
 *
 *   npx tsx functions/benchmarks/extract-facts.ts --from DIR
 *
 * Edges are resolved here: an input whose `value.function` names a function is an edge from it; an input marked
 * `function: INPUT` whose parameter is some function's output (the scientific workflows name files that way)
 * is an edge from that function too; anything else is a workflow input.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import type { Facts, FunctionFacts, WorkflowFacts } from './facts.ts'

const WORKFLOWS = ['cycles', 'epigenomics', 'genome', 'soykb', 'video', 'illgal_recognizer', 'wordcount', 'fileprocessing']

interface RefParam { type?: string, size?: number, value?: { function: string, parameter: string } }
interface RefFunction {
  name: string
  source?: string
  runtime: number
  split_ratio?: number
  input?: Record<string, RefParam>
  output?: Record<string, RefParam>
  next?: { type: string, nodes?: string[], conditions?: string[] }
}

function extract (name: string, text: string): WorkflowFacts {
  const doc = parse(text, { maxAliasCount: -1 }) as { functions: RefFunction[], global_input?: Record<string, RefParam> }
  const producers = new Map<string, string>()
  for (const f of doc.functions) {
    for (const [out, p] of Object.entries(f.output ?? {})) {
      if (p.value != null) continue // a pass-through of a workflow input, not produced here
      // a name output by several functions (`content` in video) is not a file name: it links nothing by name
      producers.set(out, producers.has(out) ? '' : f.name)
    }
  }
  const functions: FunctionFacts[] = doc.functions.map(f => {
    const outputs = Object.entries(f.output ?? {})
      .filter(([, p]) => p.value == null)
      .map(([out, p]) => ({ name: out, size: p.size ?? 0, keys: p.type === 'keys' }))
    const inputs = Object.entries(f.input ?? {}).map(([param, p]) => {
      const v = p.value
      let from: string | null = null
      if (v != null && v.function !== 'INPUT') from = v.function
      else {
        const p = producers.get(v?.parameter ?? param)
        if (p != null && p !== '' && p !== f.name) from = p
      }
      return { param, from, output: v?.parameter ?? param, size: p.size ?? 0 }
    })
    const fn: FunctionFacts = {
      name: f.name,
      runtimeS: f.runtime,
      virtual: f.source === 'VIRTUAL' || f.source === 'END',
      inputs,
      outputs,
      next: { type: f.next?.type ?? 'none', nodes: f.next?.nodes ?? [] }
    }
    if (f.next?.conditions != null) fn.next.conditions = f.next.conditions
    if (f.split_ratio != null) fn.splitRatio = f.split_ratio
    return fn
  })
  const globalInputs = Object.entries(doc.global_input ?? {}).map(([n, p]) => ({ name: n, size: p.size ?? 0 }))
  return { name, source: `faasflow/${name}.yaml`, globalInputs, functions }
}

const args = process.argv.slice(2)
const fromIdx = args.indexOf('--from')
const here = dirname(fileURLToPath(import.meta.url))
const from = fromIdx >= 0 ? args[fromIdx + 1] : undefined
if (from === undefined) {
  process.stderr.write('usage: npx tsx functions/benchmarks/extract-facts.ts --from DIR (the folder of the reference FaaSFlow <name>.yaml files)\n')
  process.exit(2)
}
const facts: Facts = {
  about: 'Facts extracted from the FaaSFlow benchmark workflow descriptions by extract-facts.ts: per function its runtime (s), outputs with sizes (bytes), the producer of each input parameter, and the next/foreach/switch structure. Input to generate.ts.',
  workflows: {}
}
for (const w of WORKFLOWS) facts.workflows[w] = extract(w, readFileSync(join(from, `${w}.yaml`), 'utf8'))
writeFileSync(join(here, 'facts.json'), JSON.stringify(facts, null, 1) + '\n')
for (const w of WORKFLOWS) console.log(w, facts.workflows[w].functions.length, 'functions')
