/**
 * SVG charts of a bench run, made with Vega-Lite and rendered headless by Vega's `view.toSVG()` (no browser).
 * vega and vega-lite are loaded lazily: a run without them still writes its tables and results.json.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { factorsLine } from './report.ts'
import { rowKey } from './stats.ts'
import type { BenchResults } from './types.ts'

export class ChartLibraryMissingError extends Error {
  static readonly NAME = 'ChartLibraryMissingError'
  constructor (message: string) {
    super(message)
    this.name = ChartLibraryMissingError.NAME
  }
}

/** The part of vega / vega-lite used here (typed locally so the project type-checks without them). */
interface VegaLib {
  parse: (spec: unknown) => unknown
  View: new (runtime: unknown, opts: { renderer: 'none' }) => { toSVG: () => Promise<string>, finalize: () => void }
}
interface VegaLiteLib { compile: (spec: unknown) => { spec: unknown } }

async function importFrom (name: string): Promise<unknown> {
  try {
    return await import(name)
  } catch (err) {
    // DFLOW_CHART_MODULES: a node_modules folder elsewhere (to try the charts before the project installs them)
    const dir = process.env.DFLOW_CHART_MODULES
    if (dir === undefined) throw err
    const pkg = JSON.parse(await readFile(join(dir, name, 'package.json'), 'utf8')) as { module?: string, exports?: Record<string, unknown> }
    const dot = pkg.exports?.['.'] as { import?: string | { default?: string }, default?: string } | string | undefined
    const entry = typeof dot === 'string' ? dot : typeof dot?.import === 'string' ? dot.import : dot?.import?.default ?? dot?.default ?? pkg.module
    if (entry === undefined) throw err
    return import(pathToFileURL(join(dir, name, entry)).href)
  }
}

export async function loadChartLibs (): Promise<{ vega: VegaLib, vl: VegaLiteLib }> {
  try {
    const vega = await importFrom('vega') as VegaLib
    const vl = await importFrom('vega-lite') as VegaLiteLib
    return { vega, vl }
  } catch (err) {
    throw new ChartLibraryMissingError(`charts need the vega and vega-lite packages (${(err as Error).message})`)
  }
}

const MODE_COLORS = { domain: ['dataflow', 'control', 'central'], range: ['#1b9e77', '#d95f02', '#7570b3'] }

function title (r: BenchResults, text: string): { text: string, subtitle: string[], anchor: 'start' } {
  return { text, subtitle: [factorsLine(r), `${r.machine}; commit ${r.commit}; ${r.date}`], anchor: 'start' }
}

const postAtLabel = (p: number | null): string => p === null ? 'examples' : `postAt ${p}`

/** Vega-Lite specs by file name. */
export function chartSpecs (r: BenchResults): Record<string, unknown> {
  const rows = r.rows.filter(x => x.requests > 0).map(x => ({ ...x, postAtLabel: postAtLabel(x.postAt), mib: x.bytes / 2 ** 20 }))
  const facet = { row: { field: 'postAtLabel', title: null }, column: { field: 'workflow', title: null, header: { labelAngle: 0, labelFontSize: 10 } } }
  const modeColor = { field: 'mode', type: 'nominal', scale: MODE_COLORS, sort: MODE_COLORS.domain }
  const perMode = (field: string, label: string, extraLayer: unknown[] = []): unknown => ({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    facet,
    spec: {
      width: 70,
      height: 160,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'mode', type: 'nominal', sort: MODE_COLORS.domain, axis: null }, y: { field, type: 'quantitative', title: label }, color: modeColor, tooltip: [{ field }] } },
        ...extraLayer
      ]
    },
    resolve: { scale: { y: 'independent' } }
  })
  const latency = perMode('p50Ms', 'p50 latency (ms); tick = p99', [
    { mark: { type: 'tick', color: 'black', thickness: 2 }, encoding: { x: { field: 'mode', type: 'nominal', sort: MODE_COLORS.domain }, y: { field: 'p99Ms', type: 'quantitative' } } },
    { mark: { type: 'rule', strokeDash: [4, 3], color: 'gray' }, encoding: { y: { field: 'criticalPathMs', type: 'quantitative', aggregate: 'max' } } }
  ])
  const cdfPoints: Array<{ workflow: string, mode: string, postAtLabel: string, latencyMs: number, fraction: number }> = []
  for (const x of r.rows) {
    const lat = r.latencies[rowKey(x.workflow, x.mode, x.postAt)] ?? []
    lat.forEach((v, i) => cdfPoints.push({ workflow: x.workflow, mode: x.mode, postAtLabel: postAtLabel(x.postAt), latencyMs: v, fraction: (i + 1) / lat.length }))
  }
  const cdf = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: cdfPoints },
    facet: { field: 'workflow', title: null },
    columns: 4,
    spec: {
      width: 200,
      height: 140,
      mark: { type: 'line', interpolate: 'step-after', point: { size: 12 } },
      encoding: {
        x: { field: 'latencyMs', type: 'quantitative', title: 'end-to-end latency (ms)', scale: { zero: false } },
        y: { field: 'fraction', type: 'quantitative', title: 'fraction of requests' },
        color: modeColor,
        strokeDash: { field: 'postAtLabel', type: 'nominal', title: null }
      }
    },
    resolve: { scale: { x: 'independent' } }
  }
  return {
    'latency.svg': { ...latency as object, title: title(r, 'Latency per workflow and mode: p50 bars, p99 ticks, critical-path lower bound dashed') },
    'bytes.svg': { ...perMode('mib', 'MiB sent between peers per request') as object, title: title(r, 'Bytes moved between peers per request, per mode') },
    'coldstart.svg': { ...perMode('coldStartMs', 'cold-start ms per request (sum over steps)') as object, title: title(r, 'Cold-start time seen by a request (sum of its steps\' coldStartMs), per mode') },
    'cdf.svg': { ...cdf, title: title(r, 'Latency distribution (CDF) per workflow; colour = mode, dash = postAt') }
  }
}

/** Renders every chart into outDir; answers the file names written. */
export async function writeCharts (r: BenchResults, outDir: string): Promise<string[]> {
  const { vega, vl } = await loadChartLibs()
  await mkdir(outDir, { recursive: true })
  const written: string[] = []
  for (const [file, spec] of Object.entries(chartSpecs(r))) {
    const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' })
    try {
      await writeFile(join(outDir, file), await view.toSVG())
    } finally {
      view.finalize()
    }
    written.push(file)
  }
  return written
}
