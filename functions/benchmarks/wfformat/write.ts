/**
 * `dflow import wfformat`: a trace file -> DIR/<name>.yaml, DIR/<name>.js and DIR/synthetic.ts (a copy of the
 * benchmark function), so the workflow runs from any location.
 */
import { readFileSync } from 'node:fs'
import { writeSelfContained, type ModuleLayout } from '../generate.ts'
import type { Factors } from '../plan.ts'
import { parseWfFormat, WfFormatError } from './parse.ts'
import { planFromTrace, type ImportOptions, type ImportSummary } from './plan.ts'
import type { Plan } from '../plan.ts'

export interface ImportResult { name: string, yaml: string, module: string, plan: Plan, summary: ImportSummary, schemaVersion: string }

/** Reads, converts and writes one trace (initMs and postAt as the bench's, else 0 and 1; one module unless `layout` says per step). */
export function importWfFormat (file: string, outDir: string, opts: ImportOptions & { initMs?: number, postAt?: number, layout?: ModuleLayout }): ImportResult {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new WfFormatError(`${file}: cannot read it: ${(err as Error).message}`)
  }
  const trace = parseWfFormat(text, file)
  const { plan, summary } = planFromTrace(trace, file, opts)
  const factors: Factors = { timeScale: opts.timeScale, sizeScale: opts.sizeScale, initMs: opts.initMs ?? 0, postAt: opts.postAt ?? 1 }
  const { yaml, module } = writeSelfContained(plan, factors, outDir, opts.layout)
  return { name: plan.name, yaml, module, plan, summary, schemaVersion: trace.schemaVersion }
}

/** The lines `dflow import wfformat` prints. */
export function describeImport (r: ImportResult, scales: { timeScale: number, sizeScale: number }): string {
  const s = r.summary
  const mib = (n: number): string => n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
  return [
    `wrote ${r.yaml} (workflow "${r.name}", WfFormat ${r.schemaVersion}; time scale ${scales.timeScale}, size scale ${scales.sizeScale})`,
    `tasks: ${s.tasks} (${s.edges} parent edges: ${s.dataEdges} with files, ${s.orderingEdges} ordering only; ${s.stageInFiles} stage-in file reads)`,
    `critical path: ${s.criticalPathMs} ms`,
    `total runtime: ${s.totalRuntimeMs} ms`,
    `bytes: ${mib(s.totalBytes)} (${s.totalBytes} B, outputs and stage-in files)`
  ].join('\n')
}

