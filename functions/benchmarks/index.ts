/**
 * The benchmark and example workflows, for `dflow bench` and tests.
 *
 * Default factors (2 cores, 24 GB, a 20-minute bench of 8 workflows x 3 modes x 20 requests on 4 peers):
 * - timeScale 0.05 (1 s -> 50 ms): the eight critical paths add up to 83.6 s of reference runtime, 4.2 s scaled,
 *   so 3 modes x 20 requests take ~250 s of pure critical path (x2 for postAt 1 and 0.5), leaving room for
 *   scheduling, cold starts and data movement; the shortest functions (0.02 s) stay at 1 ms, above timer noise
 *   relative to the 50 ms steps that dominate.
 * - sizeScale 0.01: the largest edge (video's 51.7 MB split element) becomes 0.5 MB, cycles' 1.2 GB of outputs
 *   per request becomes 12 MB. At 1/16 (75 MB per cycles request) a request took 6-9 s on 2 cores, mostly
 *   hashing and encrypting bytes, and the bench needed well over an hour; at 0.01 transfers stay visible
 *   (tens of KB to 0.5 MB per edge, above the 16 KiB inline limit) and the whole bench fits in ~20 minutes.
 * - initMs 0 (a worker's own start cost is the cold start; raise it to model containers), postAt 1 (post at return).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Facts } from './facts.ts'
import { buildPlan, longestPathMs } from './plan.ts'
import type { Factors } from './plan.ts'

const here = dirname(fileURLToPath(import.meta.url))

export const BENCHMARK_NAMES = ['cycles', 'epigenomics', 'genome', 'soykb', 'video', 'illgal_recognizer', 'wordcount', 'fileprocessing'] as const
export type BenchmarkName = typeof BENCHMARK_NAMES[number]

export const DEFAULT_FACTORS: Readonly<Factors> = Object.freeze({ timeScale: 0.05, sizeScale: 0.01, initMs: 0, postAt: 1 })

export class UnknownWorkflowError extends Error {
  static readonly NAME = 'UnknownWorkflowError'
  constructor (name: string) {
    super(`unknown benchmark workflow "${name}"; known: ${BENCHMARK_NAMES.join(', ')}`)
    this.name = UnknownWorkflowError.NAME
  }
}

let facts: Facts | undefined
/** facts.json, committed in the project (extracted once by extract-facts.ts). */
export function loadFacts (): Facts {
  facts ??= JSON.parse(readFileSync(join(here, 'facts.json'), 'utf8')) as Facts
  return facts
}

export interface BenchmarkWorkflow {
  /** the reference's name (folder and --workflows name) */
  name: BenchmarkName
  /** the `name:` in workflow.yaml ([a-z0-9-]+: illgal_recognizer -> illgal-recognizer) */
  workflowName: string
  /** absolute path of the generated workflow.yaml (at the committed, default factors) */
  path: string
  steps: number
  /** the workflow's inputs: one `seed`, mixed into every synthetic output's bytes */
  inputs: ['seed']
}

export const benchmarkWorkflows: BenchmarkWorkflow[] = BENCHMARK_NAMES.map(name => ({
  name,
  workflowName: name.replace(/_/g, '-'),
  path: join(here, name, 'workflow.yaml'),
  get steps () { return loadFacts().workflows[name].functions.length },
  inputs: ['seed']
}))

/**
 * Inputs for one request of a benchmark workflow. The same seed gives the same bytes (and CIDs) on every run;
 * pass a per-request seed when stores must not find the values from an earlier request.
 */
export function benchmarkInputs (seed: string | number = 0): { seed: string | number } {
  return { seed }
}

/** Sum of scaled runtimes along the longest path of steps that run (the p50 lower bound). */
export function criticalPathMs (name: string, timeScale: number = DEFAULT_FACTORS.timeScale): number {
  const w = loadFacts().workflows[name]
  if (w == null || !(BENCHMARK_NAMES as readonly string[]).includes(name)) throw new UnknownWorkflowError(name)
  return longestPathMs(buildPlan(w, { ...DEFAULT_FACTORS, timeScale }))
}

/** The examples with real work in functions/, each with a sample input and (part of) what it gives. */
export const exampleWorkflows = [
  {
    name: 'wordcount',
    path: join(here, '../wordcount/workflow.yaml'),
    inputs: { text: 'the cat and the hat\nthe end' },
    expect: { total: 7, distinct: 5 }
  },
  {
    name: 'fileprocessing',
    path: join(here, '../fileprocessing/workflow.yaml'),
    inputs: { document: '# Review\n\nA *great* day, not bad at all.' },
    expect: { label: 'positive' }
  },
  {
    name: 'recognizer',
    path: join(here, '../recognizer/workflow.yaml'),
    inputs: { text: 'buy cheap weapons now' },
    expect: { label: 'flagged', text: 'buy cheap ******* now', censored: 1 }
  },
  {
    name: 'matrix',
    path: join(here, '../matrix/workflow.yaml'),
    inputs: { a: [[1, 2], [3, 4], [5, 6]], b: [[1, 0, 2], [0, 1, 3]] },
    expect: { product: [[1, 2, 8], [3, 4, 18], [5, 6, 28]], rows: 3, cols: 3 }
  }
] as const
