import { open, stat } from 'node:fs/promises'
import type { Manifest } from './manifest.ts'

/** One line of a peer's process log, with the time it was written (as far as the line tells). */
export interface LogEntry {
  /** epoch ms; a line without its own time (a stack frame, stdout) gets the time of the line before it */
  ts: number
  peer: number
  line: string
}

const ISO = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s/

/** The time a log line carries: a leading ISO time (text format) or the `ts` of a JSON line (--log-format json). */
export function lineTime (line: string): number | undefined {
  const m = ISO.exec(line)
  if (m != null) return Date.parse(m[1])
  if (line.startsWith('{')) {
    try {
      const ts = (JSON.parse(line) as { ts?: unknown }).ts
      if (typeof ts === 'string') return Date.parse(ts)
      if (typeof ts === 'number') return ts
    } catch {}
  }
  return undefined
}

/** Turns the text of one log into entries; `lastTs` carries the time over from an earlier read of the same file. */
export function parseLog (text: string, peer: number, lastTs = 0): { entries: LogEntry[], lastTs: number } {
  const entries: LogEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    lastTs = lineTime(line) ?? lastTs
    entries.push({ ts: lastTs, peer, line })
  }
  return { entries, lastTs }
}

/** Entries of several logs in time order; lines of one log keep their order (the sort is stable). */
export function mergeLogs (logs: LogEntry[][]): LogEntry[] {
  return logs.flat().sort((a, b) => a.ts - b.ts)
}

export function formatEntry (e: LogEntry): string {
  return `peer-${e.peer} | ${e.line}`
}

interface Tail { peer: number, path: string, offset: number, lastTs: number, partial: string }

async function readFrom (t: Tail): Promise<LogEntry[]> {
  let size: number
  try { size = (await stat(t.path)).size } catch { return [] }
  // a restarted peer with a fresh `up` truncates its log: start over
  if (size < t.offset) { t.offset = 0; t.partial = '' }
  if (size === t.offset) return []
  const fh = await open(t.path, 'r')
  try {
    const buf = Buffer.alloc(size - t.offset)
    await fh.read(buf, 0, buf.length, t.offset)
    t.offset = size
    const text = t.partial + buf.toString('utf8')
    const cut = text.lastIndexOf('\n')
    t.partial = text.slice(cut + 1)
    const { entries, lastTs } = parseLog(text.slice(0, cut + 1), t.peer, t.lastTs)
    t.lastTs = lastTs
    return entries
  } finally {
    await fh.close()
  }
}

export interface LogsOptions {
  /** only this peer's log */
  peer?: number
  /** keep reading as the logs grow, until the signal aborts */
  follow?: boolean
  signal?: AbortSignal
  /** how often to look for new lines when following @default 300 */
  pollMs?: number
}

/**
 * The peers' own process logs (DIR/peer-I.log: what the peer process wrote on stdout and stderr), merged in
 * time order. Not what functions wrote: that is `dflow logs REQUEST_ID`.
 */
export async function streamLogs (manifest: Manifest, write: (entry: LogEntry) => void, opts: LogsOptions = {}): Promise<void> {
  const peers = opts.peer === undefined ? manifest.peers : manifest.peers.filter(p => p.index === opts.peer)
  const tails: Tail[] = peers.map(p => ({ peer: p.index, path: p.log, offset: 0, lastTs: 0, partial: '' }))
  for (const e of mergeLogs(await Promise.all(tails.map(readFrom)))) write(e)
  if (opts.follow !== true) return
  const pollMs = opts.pollMs ?? 300
  while (opts.signal?.aborted !== true) {
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, pollMs)
      opts.signal?.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
    })
    // lines that arrived in the same poll are merged in time order
    for (const e of mergeLogs(await Promise.all(tails.map(readFrom)))) write(e)
  }
}
