import { inspect } from 'node:util'
import { enabled as debugEnabled } from '@libp2p/logger'
import { base32 } from 'multiformats/bases/base32'
import { base58btc } from 'multiformats/bases/base58'
import { base64 } from 'multiformats/bases/base64'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export type LogFormat = 'text' | 'json'
export type LogLevel = 'error' | 'warn' | 'debug' | 'trace'

/** A Logger that can also warn (always written, like errors). */
export interface DflowLogger extends Logger {
  warn(formatter: any, ...args: any[]): void
}

export interface DflowLoggerOptions {
  /** full PeerId: kept whole in JSON lines, shortened in text lines */
  peer?: string
  /** @default 'text' */
  format?: LogFormat
  /** where lines go (one call per line, newline included) @default process.stderr */
  write?: (line: string) => void
}

/**
 * The peer's logger. Unlike @libp2p/logger (where errors print only under DEBUG), errors and warnings of
 * dflow components (`dflow:*`) are always written, with the component name, so a peer never fails silently;
 * `DEBUG=dflow:*` adds the detail lines. libp2p's own components keep their DEBUG convention (their errors
 * under `DEBUG=libp2p:*`): a killed neighbour makes libp2p log dial and stream errors that are normal here.
 * The component name is matched against DEBUG without the peer prefix, so `DEBUG=dflow:*` works as written.
 */
export function dflowLogger (opts: DflowLoggerOptions = {}): ComponentLogger {
  const format = opts.format ?? 'text'
  const write = opts.write ?? ((line: string) => { process.stderr.write(line) })
  const peer = opts.peer
  const short = peer === undefined ? undefined : shortPeer(peer)
  const emit = (level: LogLevel, component: string, formatter: unknown, args: unknown[]): void => {
    let msg: string
    try { msg = formatMessage(formatter, args) } catch (err) { msg = `${String(formatter)} (unformattable: ${(err as Error).message})` }
    const ts = new Date().toISOString()
    if (format === 'json') {
      write(JSON.stringify({ ts, level, component, ...(peer !== undefined ? { peer } : {}), msg }) + '\n')
    } else {
      write(`${ts} ${level.toUpperCase().padEnd(5)} ${short !== undefined ? short + ' ' : ''}${component}: ${msg}\n`)
    }
  }
  const forComponent = (name: string): DflowLogger => {
    const detail = debugEnabled(name)
    const ours = name === 'dflow' || name.startsWith('dflow:')
    const errors = ours || debugEnabled(`${name}:error`)
    const trace = debugEnabled(`${name}:trace`) && (process.env.DEBUG ?? '').includes(':trace')
    const log = ((formatter: unknown, ...args: unknown[]) => { if (detail) emit('debug', name, formatter, args) }) as DflowLogger
    log.error = (formatter: unknown, ...args: unknown[]) => { if (errors) emit('error', name, formatter, args) }
    log.warn = (formatter: unknown, ...args: unknown[]) => { if (errors) emit('warn', name, formatter, args) }
    log.trace = (formatter: unknown, ...args: unknown[]) => { if (trace) emit('trace', name, formatter, args) }
    log.enabled = detail
    log.newScope = (scope: string) => forComponent(`${name}:${scope}`)
    return log
  }
  return { forComponent }
}

/** Warn through a Logger: DflowLogger's warn when it has one, else its error channel. */
export function warn (log: Logger, formatter: string, ...args: unknown[]): void {
  const w = (log as Partial<DflowLogger>).warn
  if (typeof w === 'function') w(formatter, ...args)
  else log.error(formatter, ...args)
}

export function shortPeer (peer: string): string {
  return peer.length > 12 ? `${peer.slice(0, 4)}…${peer.slice(-6)}` : peer
}

/** printf-style formatting with debug's and libp2p's directives (%s %d %i %f %j %o %O %p %c %k %a %b %t %m %e). */
export function formatMessage (formatter: unknown, args: unknown[]): string {
  if (formatter instanceof Error) return [formatError(formatter), ...args.map(a => fmtAny(a))].join(' ')
  if (typeof formatter !== 'string') return [formatter, ...args].map(a => fmtAny(a)).join(' ')
  let i = 0
  const out = formatter.replace(/%([a-zA-Z%])/g, (match, c: string) => {
    if (c === '%') return '%'
    if (i >= args.length) return match
    const v = args[i++]
    switch (c) {
      case 's': case 'p': case 'c': case 'k': case 'a': return v == null ? String(v) : typeof v === 'string' ? v : fmtAny(v)
      case 'd': case 'i': return String(c === 'i' ? Math.trunc(Number(v)) : Number(v))
      case 'f': return String(Number(v))
      case 'j': try { return JSON.stringify(v) } catch { return '[unserializable]' }
      case 'o': case 'O': return inspect(v, { depth: 4, breakLength: Infinity })
      case 'b': return v instanceof Uint8Array ? base58btc.baseEncode(v) : String(v)
      case 't': return v instanceof Uint8Array ? base32.baseEncode(v) : String(v)
      case 'm': return v instanceof Uint8Array ? base64.baseEncode(v) : String(v)
      case 'e': return formatError(v)
      default: i--; return match
    }
  })
  const rest = args.slice(i).map(a => fmtAny(a))
  return rest.length > 0 ? `${out} ${rest.join(' ')}` : out
}

function fmtAny (v: unknown): string {
  if (typeof v === 'string') return v
  if (v instanceof Error) return formatError(v)
  if (v != null && typeof v === 'object' && typeof (v as { toString?: unknown }).toString === 'function' && (v as object).toString !== Object.prototype.toString) return String(v)
  return inspect(v, { depth: 3, breakLength: Infinity })
}

function formatError (v: unknown): string {
  if (v == null) return String(v)
  if (!(v instanceof Error)) return fmtAny(v)
  // the stack already starts with "Name: message"; AggregateErrors list their parts
  let out = v.stack ?? `${v.name}: ${v.message}`
  if (v instanceof AggregateError) out += v.errors.map(e => `\n  ${formatError(e).split('\n').join('\n  ')}`).join('')
  return out
}
