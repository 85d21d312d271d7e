import { assertValue, type Value } from '../values/codec.ts'

const MAX_LINE = 64 * 1024
const MAX_TEXT = 64 * 1024

/** What the host accepts of one message: the checked fields, or why the message breaks the rules. */
export type Checked<T> = { ok: true, value: T } | { ok: false, problem: string, output?: string }

const text = (v: unknown, max = MAX_TEXT): string => (typeof v === 'string' ? v : String(v)).slice(0, max)

/**
 * The host's own check of what an instance says during one run. The instance enforces the output rules for the
 * function (instance-runtime.mjs), but the instance is on the other side of the sandbox: user code can post to
 * the host directly (process.send, parentPort), so every message is checked again here - declared output
 * names, values, each output produced once, stream indices counted by the host, nothing missing at the end.
 */
export class RunGuard {
  private readonly declared: Set<string>
  private readonly produced = new Map<string, 'value' | 'stream'>()
  private readonly streams: Record<string, number> = {}

  constructor (outputs: string[]) {
    this.declared = new Set(outputs)
  }

  output (name: unknown, value: unknown): Checked<{ name: string, value: Value }> {
    const bad = this.check(name, value)
    if (bad !== undefined) return bad
    const n = name as string
    if (this.produced.has(n)) return { ok: false, problem: `output ${JSON.stringify(n)}: produced twice`, output: n }
    this.produced.set(n, 'value')
    return { ok: true, value: { name: n, value: value as Value } }
  }

  emit (name: unknown, value: unknown): Checked<{ name: string, index: number, value: Value }> {
    const bad = this.check(name, value)
    if (bad !== undefined) return bad
    const n = name as string
    if (this.produced.get(n) === 'value') return { ok: false, problem: `output ${JSON.stringify(n)}: ctx.emit after ctx.output`, output: n }
    this.produced.set(n, 'stream')
    const index = this.streams[n] ?? 0
    this.streams[n] = index + 1
    return { ok: true, value: { name: n, index, value: value as Value } }
  }

  /** at 'done': every declared output produced; the stream counts are the host's own */
  done (startedAt: unknown, endedAt: unknown): Checked<{ startedAt: number, endedAt: number, streams: Record<string, number> }> {
    const missing = [...this.declared].filter(n => !this.produced.has(n))
    if (missing.length > 0) return { ok: false, problem: `output ${missing.map(n => JSON.stringify(n)).join(', ')}: declared but never produced`, output: missing[0] }
    const now = Date.now()
    const time = (v: unknown): number => typeof v === 'number' && Number.isFinite(v) ? v : now
    return { ok: true, value: { startedAt: time(startedAt), endedAt: time(endedAt), streams: { ...this.streams } } }
  }

  static line (v: unknown): string {
    return text(v, MAX_LINE)
  }

  static text (v: unknown): string {
    return text(v)
  }

  private check (name: unknown, value: unknown): { ok: false, problem: string, output?: string } | undefined {
    if (typeof name !== 'string' || !this.declared.has(name)) {
      return { ok: false, problem: `output ${JSON.stringify(text(name, 200))}: is not declared (declared: ${[...this.declared].join(', ') || 'none'})` }
    }
    try {
      assertValue(value, `output ${JSON.stringify(name)}`)
    } catch (err) {
      return { ok: false, problem: (err as Error).message, output: name }
    }
    return undefined
  }
}
