import { readFileSync } from 'node:fs'
import { collect, UsageError } from './common.ts'
import type { InputValue } from '../dscheduler/types.ts'

export const inputOptionParser = collect

function splitPair (spec: string, flag: string): [string, string] {
  const eq = spec.indexOf('=')
  if (eq <= 0) throw new UsageError(`${flag} ${JSON.stringify(spec)}: expected NAME=VALUE`)
  return [spec.slice(0, eq), spec.slice(eq + 1)]
}

function readFile (path: string, flag: string, name: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new UsageError(`${flag} ${name}=@${path}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/**
 * `--input NAME=VALUE`: VALUE as JSON when it parses, else the string; `NAME=@PATH`: the file as UTF-8 text.
 * `--bytes NAME=@PATH`: the file's bytes.
 */
export function parseInputs (inputs: string[] = [], bytes: string[] = []): Record<string, InputValue> {
  const out: Record<string, InputValue> = {}
  const set = (name: string, value: InputValue, flag: string): void => {
    if (name in out) throw new UsageError(`${flag}: input ${name} given twice`)
    out[name] = value
  }
  for (const spec of inputs) {
    const [name, raw] = splitPair(spec, '--input')
    if (raw.startsWith('@')) { set(name, readFile(raw.slice(1), '--input', name).toString('utf8'), '--input'); continue }
    let value: InputValue
    try {
      value = JSON.parse(raw) as InputValue
    } catch {
      value = raw
    }
    set(name, value, '--input')
  }
  for (const spec of bytes) {
    const [name, raw] = splitPair(spec, '--bytes')
    if (!raw.startsWith('@')) throw new UsageError(`--bytes ${spec}: expected NAME=@PATH`)
    set(name, new Uint8Array(readFile(raw.slice(1), '--bytes', name)), '--bytes')
  }
  return out
}
