/** A sample of the Prometheus text exposition format: `name{label="v",...} value`. */
export interface Sample { name: string, labels: Record<string, string>, value: number }

/** Parses the text format strictly enough to fail a test on malformed output: every non-comment line must parse. */
export function parseProm (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# TYPE ')) { const [, , name, type] = line.split(' '); types.set(name, type); continue }
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (m == null) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const labels: Record<string, string> = {}
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2]
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : /^nan$/i.test(m[4]) ? NaN : Number(m[4])
    if (Number.isNaN(value) && !/^nan$/i.test(m[4])) throw new Error(`bad value in ${JSON.stringify(line)}`)
    samples.push({ name: m[1], labels, value })
  }
  return { samples, types }
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sum (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0)
}

export function has (samples: Sample[], name: string): boolean {
  return samples.some(s => s.name === name)
}

export async function scrape (api: string): Promise<{ samples: Sample[], types: Map<string, string>, contentType: string }> {
  const res = await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`)
  return { ...parseProm(await res.text()), contentType: res.headers.get('content-type') ?? '' }
}
