import type { Ref } from './types.ts'

/** Parses a ref as written (`inputs.NAME`, `STEP.OUTPUT`, `$item`, `$index`); undefined when malformed. */
export function parseRef (text: string): Ref | undefined {
  if (text === '$item') return { kind: 'item' }
  if (text === '$index') return { kind: 'index' }
  const m = /^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)$/.exec(text)
  if (m == null) return undefined
  if (m[1] === 'inputs') return { kind: 'input', name: m[2] }
  return { kind: 'step', step: m[1], output: m[2] }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `500ms`, `30s`, `1.5m`, `1h` -> milliseconds; undefined when malformed. */
export function parseDuration (text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(text)
  if (m == null) return undefined
  return Math.round(Number(m[1]) * UNIT_MS[m[2]])
}

/** `./wordcount.ts#split` -> module and export ('default' without '#'). */
export function parseRun (run: string): { module: string, export: string } {
  const i = run.indexOf('#')
  return i < 0 ? { module: run, export: 'default' } : { module: run.slice(0, i), export: run.slice(i + 1) }
}

export const DEFAULT_TIMEOUT_MS = 60_000
export const DEFAULT_RETRIES = 0
export const DEFAULT_MEMORY_MB = 256
