/**
 * Where a peer's RSS is, for memory benches: from /proc/PID/smaps, glibc's main arena (`[heap]`), the other
 * anonymous mappings (V8's heap, glibc's thread arenas and mmapped chunks, stacks) and file-backed pages (node's
 * binary, shared libraries); from the peer's /metrics, V8's committed heap by space and external memory.
 */
import { readFile } from 'node:fs/promises'

export interface MemSplit {
  rss: number
  /** glibc's main arena (brk) */
  brk: number
  /** anonymous mappings other than [heap] and [stack] */
  anon: number
  /** of anon: mappings that start on a 64 MiB boundary, as glibc's thread arenas do (a heuristic) */
  arenas: number
  file: number
  /** V8 committed heap, total and per space */
  v8: number
  spaces: Record<string, number>
  external: number
}

const MIB = 2 ** 20

const ARENA_ALIGN = 64n * 2n ** 20n

export async function smapsSplit (pid: number): Promise<Pick<MemSplit, 'rss' | 'brk' | 'anon' | 'arenas' | 'file'>> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8')
  let name = ''
  let aligned = false
  const out = { rss: 0, brk: 0, anon: 0, arenas: 0, file: 0 }
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head != null) { name = head[2]; aligned = BigInt('0x' + head[1]) % ARENA_ALIGN === 0n; continue }
    const m = /^Rss:\s+(\d+) kB/.exec(line)
    if (m == null) continue
    const bytes = Number(m[1]) * 1024
    out.rss += bytes
    if (name === '[heap]') out.brk += bytes
    else if (name === '' || name.startsWith('[anon')) { out.anon += bytes; if (aligned) out.arenas += bytes }
    else if (name.startsWith('/')) out.file += bytes
    else out.anon += bytes // [stack], [vdso], ...
  }
  return out
}

/** A peer's memory split; api is its HTTP API base URL. */
export async function memSplit (pid: number, api: string): Promise<MemSplit> {
  const [s, text] = await Promise.all([smapsSplit(pid), fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(async r => r.text())])
  const spaces: Record<string, number> = {}
  for (const m of text.matchAll(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)/gm)) spaces[m[1]] = Number(m[2])
  const num = (name: string): number => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN)
  return { ...s, v8: num('nodejs_heap_size_total_bytes'), spaces, external: num('nodejs_external_memory_bytes') }
}

/** One line: "rss 112 = brk 14 + anon 80 (arenas 9) + file 18; v8 60 (old 40 new 16 ...), external 3" (MiB) */
export function formatSplit (m: MemSplit): string {
  const f = (n: number): string => (n / MIB).toFixed(0)
  const sp = Object.entries(m.spaces).filter(([, v]) => v >= MIB).map(([k, v]) => `${k.replace(/_space$/, '')} ${f(v)}`).join(' ')
  return `rss ${f(m.rss)} = brk ${f(m.brk)} + anon ${f(m.anon)} (arenas ${f(m.arenas)}) + file ${f(m.file)}; v8 ${f(m.v8)} (${sp}), ext ${f(m.external)}`
}
