/**
 * Which workflow files a bench run uses: the eight FaaSFlow workflows generated at the run's factors (one set per
 * postAt), and optionally the real example workflows.
 */
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { BENCHMARK_NAMES, DEFAULT_FACTORS, benchmarkInputs, benchmarkWorkflows, criticalPathMs, exampleWorkflows, loadFacts } from '../../functions/benchmarks/index.ts'
import { generate, type ModuleLayout } from '../../functions/benchmarks/generate.ts'
import { buildPlan } from '../../functions/benchmarks/plan.ts'
import { importWfFormat } from '../../functions/benchmarks/wfformat/write.ts'
import { shapeCriticalPathMs, shapeFromPlan, type DagShape } from './shape.ts'
import type { BenchOptions } from './types.ts'

export class BenchUsageError extends Error {
  static readonly NAME = 'BenchUsageError'
  readonly exitCode = 2
  constructor (message: string) {
    super(message)
    this.name = BenchUsageError.NAME
  }
}

/** One workflow at one postAt: what the runner loads, submits and reports on. */
export interface BenchJob {
  /** benchmark name, or `example-<name>` */
  workflow: string
  postAt: number | null
  path: string
  criticalPathMs: number | null
  /** the tasks a central engine would run (lower bound, Dask yardstick); null for the example workflows */
  shape: DagShape | null
  /** distinct inputs per request, so no value is already stored from an earlier one */
  inputs: (seed: string) => Record<string, unknown>
}

const EXAMPLE_PREFIX = 'example-'

/** A WfFormat trace given by path (`dflow bench --workflows PATH.json`), imported on the fly. */
export const isTracePath = (name: string): boolean => /\.json$/i.test(name)

/**
 * `all` = the eight benchmarks; `examples` = the four real workflows (wordcount, fileprocessing, recognizer,
 * matrix) as `example-<name>`; `all+examples` = both; `PATH.json` = a WfCommons (WfFormat) trace; else a comma
 * list of any of these.
 */
export function parseWorkflowList (text: string): string[] {
  const names: string[] = []
  for (const part of text.split(',').map(s => s.trim()).filter(s => s !== '')) {
    if (part === 'all') names.push(...BENCHMARK_NAMES)
    else if (part === 'examples') names.push(...exampleWorkflows.map(e => EXAMPLE_PREFIX + e.name))
    else if (part === 'all+examples') names.push(...BENCHMARK_NAMES, ...exampleWorkflows.map(e => EXAMPLE_PREFIX + e.name))
    else if (isTracePath(part)) {
      if (!existsSync(part)) throw new BenchUsageError(`--workflows: WfFormat file ${part} not found`)
      names.push(resolve(part))
    } else if ((BENCHMARK_NAMES as readonly string[]).includes(part) || exampleWorkflows.some(e => EXAMPLE_PREFIX + e.name === part)) names.push(part)
    else throw new BenchUsageError(`--workflows: unknown workflow "${part}"; known: all, examples, all+examples, PATH.json (a WfFormat trace), ${BENCHMARK_NAMES.join(', ')}, ${exampleWorkflows.map(e => EXAMPLE_PREFIX + e.name).join(', ')}`)
  }
  if (names.length === 0) throw new BenchUsageError('--workflows: no workflow named')
  return [...new Set(names)]
}

function salted (inputs: Record<string, unknown>, seed: string): Record<string, unknown> {
  // strings get the seed appended (a different value, hence different CIDs); other inputs stay as they are
  return Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, typeof v === 'string' ? `${v}\n${seed}` : v]))
}

/** A job's name in tables and results: the workflow's, with the module layout when it is not the default. */
export function jobLabel (name: string, layout: ModuleLayout): string {
  return layout === 'per-workflow' ? name : `${name}/${layout}`
}

/**
 * Builds the jobs, one per workflow, postAt and module layout (`modules`, default per-workflow: all steps in one
 * module; per-step: one module per step, labelled `<name>/per-step`). The committed workflows are used when the
 * factors are the defaults (postAt 1, per-workflow); anything else is generated into a temporary directory
 * (returned so the caller can remove it).
 */
export function prepareJobs (opts: Pick<BenchOptions, 'workflows' | 'timeScale' | 'sizeScale' | 'initMs' | 'postAt' | 'modules'>): { jobs: BenchJob[], generatedDir?: string } {
  const jobs: BenchJob[] = []
  let generatedDir: string | undefined
  const benchNames = opts.workflows.filter(w => !w.startsWith(EXAMPLE_PREFIX) && !isTracePath(w))
  const traces = opts.workflows.filter(isTracePath)
  const committed = opts.timeScale === DEFAULT_FACTORS.timeScale && opts.sizeScale === DEFAULT_FACTORS.sizeScale && opts.initMs === DEFAULT_FACTORS.initMs
  for (const postAt of opts.postAt) {
    for (const layout of opts.modules ?? ['per-workflow']) {
      const sub = layout === 'per-workflow' ? `post-at-${postAt}` : join(`post-at-${postAt}`, layout)
      let dir: string | undefined
      if (benchNames.length > 0 && !(committed && postAt === DEFAULT_FACTORS.postAt && layout === 'per-workflow')) {
        generatedDir ??= mkdtempSync(join(tmpdir(), 'dflow-bench-wf-'))
        dir = join(generatedDir, sub)
        generate({ timeScale: opts.timeScale, sizeScale: opts.sizeScale, initMs: opts.initMs, postAt }, dir, layout)
      }
      for (const name of benchNames) {
        const path = dir === undefined ? benchmarkWorkflows.find(b => b.name === name)!.path : join(dir, name, 'workflow.yaml')
        const shape = shapeFromPlan(buildPlan(loadFacts().workflows[name], { ...DEFAULT_FACTORS, timeScale: opts.timeScale, sizeScale: opts.sizeScale }))
        jobs.push({ workflow: jobLabel(name, layout), postAt, path, criticalPathMs: criticalPathMs(name, opts.timeScale), shape, inputs: seed => benchmarkInputs(seed) })
      }
      for (const trace of traces) {
        // imported at the bench's factors, with a seed input so every request makes values of its own
        generatedDir ??= mkdtempSync(join(tmpdir(), 'dflow-bench-wf-'))
        const r = importWfFormat(trace, join(generatedDir, sub, 'wfformat'), { timeScale: opts.timeScale, sizeScale: opts.sizeScale, initMs: opts.initMs, postAt, seed: true, name: basename(trace).replace(/\.json$/i, ''), layout })
        const shape = shapeFromPlan(r.plan)
        jobs.push({ workflow: jobLabel(r.name, layout), postAt, path: r.yaml, criticalPathMs: shapeCriticalPathMs(shape), shape, inputs: seed => benchmarkInputs(seed) })
      }
    }
  }
  for (const name of opts.workflows.filter(w => w.startsWith(EXAMPLE_PREFIX))) {
    const ex = exampleWorkflows.find(e => EXAMPLE_PREFIX + e.name === name)!
    jobs.push({ workflow: name, postAt: null, path: ex.path, criticalPathMs: null, shape: null, inputs: seed => salted(ex.inputs as Record<string, unknown>, seed) })
  }
  return { jobs, generatedDir }
}
