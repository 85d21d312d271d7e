/**
 * Reads a WfCommons trace (WfFormat JSON, schema 1.0 to 1.4) into tasks with runtimes, parents and files.
 * Schema 1.4 has `workflow.tasks`, `runtimeInSeconds` and `sizeInBytes`; 1.0 to 1.3 have `workflow.jobs`,
 * `runtime` and `size` (read as bytes). Later schemas (1.5: specification/execution split) are refused.
 */

export class WfFormatError extends Error {
  static readonly NAME = 'WfFormatError'
  constructor (message: string) {
    super(message)
    this.name = WfFormatError.NAME
  }
}

export const WFFORMAT_VERSIONS = ['1.0', '1.1', '1.2', '1.3', '1.4'] as const

export interface WfFile { name: string, bytes: number }

export interface WfTask {
  /** the trace's task name (what `parents` refer to) */
  name: string
  /** the trace's `id`, when it has one (1.4) */
  id?: string
  category?: string
  runtimeS: number
  parents: string[]
  inputs: WfFile[]
  outputs: WfFile[]
}

export interface WfTrace { name: string, schemaVersion: string, tasks: WfTask[] }

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** "1.4", 1.4, "1" -> "1.4" / "1.0"; null when not a known version. */
function normaliseVersion (v: unknown): string | null {
  const text = typeof v === 'number' ? (Number.isInteger(v) ? v.toFixed(1) : String(v)) : typeof v === 'string' ? v.trim() : ''
  const fixed = /^\d+$/.test(text) ? `${text}.0` : text
  return (WFFORMAT_VERSIONS as readonly string[]).includes(fixed) ? fixed : null
}

/** Parses and checks a trace; every error names the file (and the task, when one is at fault). */
export function parseWfFormat (text: string, file: string): WfTrace {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new WfFormatError(`${file}: not a WfFormat JSON file: ${(err as Error).message}`)
  }
  if (!isObj(doc)) throw new WfFormatError(`${file}: not a WfFormat JSON file (the top level is not an object)`)
  const version = normaliseVersion(doc.schemaVersion)
  if (version === null) {
    throw new WfFormatError(`${file}: schemaVersion ${JSON.stringify(doc.schemaVersion ?? null)} is not supported; dflow imports WfFormat schemaVersion ${WFFORMAT_VERSIONS.join(', ')}`)
  }
  const modern = version === '1.4'
  const listKey = modern ? 'tasks' : 'jobs'
  const wf = doc.workflow
  const list = isObj(wf) ? wf[listKey] : undefined
  if (!Array.isArray(list)) throw new WfFormatError(`${file}: schemaVersion ${version} needs workflow.${listKey} (a list)`)
  const tasks: WfTask[] = []
  const seen = new Set<string>()
  for (const [i, raw] of list.entries()) {
    const where = `${file}: workflow.${listKey}[${i}]`
    if (!isObj(raw) || typeof raw.name !== 'string' || raw.name === '') throw new WfFormatError(`${where}: a task needs a name`)
    if (seen.has(raw.name)) throw new WfFormatError(`${where}: task name "${raw.name}" appears twice`)
    seen.add(raw.name)
    const rt = modern ? raw.runtimeInSeconds : raw.runtime
    if (typeof rt !== 'number' || !Number.isFinite(rt) || rt < 0) throw new WfFormatError(`${where} ("${raw.name}"): ${modern ? 'runtimeInSeconds' : 'runtime'} must be a number >= 0`)
    const parents = raw.parents ?? []
    if (!Array.isArray(parents) || parents.some(p => typeof p !== 'string')) throw new WfFormatError(`${where} ("${raw.name}"): parents must be a list of task names`)
    const inputs: WfFile[] = []
    const outputs: WfFile[] = []
    const files = raw.files ?? []
    if (!Array.isArray(files)) throw new WfFormatError(`${where} ("${raw.name}"): files must be a list`)
    for (const [j, f] of files.entries()) {
      const fw = `${where} ("${raw.name}") files[${j}]`
      if (!isObj(f) || typeof f.name !== 'string' || f.name === '') throw new WfFormatError(`${fw}: a file needs a name`)
      const size = modern ? f.sizeInBytes : f.size
      if (typeof size !== 'number' || !Number.isFinite(size) || size < 0) throw new WfFormatError(`${fw}: ${modern ? 'sizeInBytes' : 'size'} must be a number >= 0`)
      if (f.link === 'input') inputs.push({ name: f.name, bytes: size })
      else if (f.link === 'output') outputs.push({ name: f.name, bytes: size })
      else throw new WfFormatError(`${fw}: link must be "input" or "output", got ${JSON.stringify(f.link)}`)
    }
    tasks.push({
      name: raw.name,
      ...(typeof raw.id === 'string' ? { id: raw.id } : {}),
      ...(typeof raw.category === 'string' ? { category: raw.category } : {}),
      runtimeS: rt,
      parents: [...new Set(parents as string[])],
      inputs,
      outputs
    })
  }
  if (tasks.length === 0) throw new WfFormatError(`${file}: workflow.${listKey} is empty`)
  // parents may name a task by name or (1.4) by id
  const byName = new Set(tasks.map(t => t.name))
  const idToName = new Map(tasks.filter(t => t.id !== undefined).map(t => [t.id!, t.name]))
  for (const t of tasks) {
    t.parents = [...new Set(t.parents.map(p => {
      if (byName.has(p)) return p
      const n = idToName.get(p)
      if (n === undefined) throw new WfFormatError(`${file}: task "${t.name}" names an unknown parent "${p}"`)
      return n
    }))]
    if (t.parents.includes(t.name)) throw new WfFormatError(`${file}: task "${t.name}" is its own parent`)
  }
  const name = typeof doc.name === 'string' && doc.name !== '' ? doc.name : file.replace(/^.*[\\/]/, '').replace(/\.json$/i, '')
  return { name, schemaVersion: version, tasks }
}
