import { Option, type Command } from 'commander'
import { DEFAULT_CONFIG, PEER_FLAGS, type FlagDef } from '../config.ts'

/** Bad command-line input: exit code 2. */
export class UsageError extends Error {
  static readonly NAME = 'UsageError'
  readonly exitCode = 2
  constructor (message: string) {
    super(message)
    this.name = UsageError.NAME
  }
}

/** A command failed for a reason worth a one-line message and exit code 1 (or the given one). */
export class CliError extends Error {
  static readonly NAME = 'CliError'
  readonly exitCode: number
  constructor (message: string, exitCode = 1) {
    super(message)
    this.name = CliError.NAME
    this.exitCode = exitCode
  }
}

/** commander argParser for repeatable options (`--input a --input b`). */
export function collect (value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

function describeDefault (def: FlagDef): string {
  const value = DEFAULT_CONFIG[def.key]
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return ''
  return ` (default: ${Array.isArray(value) ? value.join(' ') : String(value)})`
}

/**
 * Adds the peer setting flags to a command. Values stay raw strings (no commander defaults) so the config
 * loader can layer defaults < --config file < flags and name the bad flag itself.
 */
export function addPeerOptions (cmd: Command, filter: (def: FlagDef) => boolean = () => true): Command {
  for (const def of PEER_FLAGS.filter(filter)) {
    const desc = def.description + describeDefault(def)
    if (def.kind === 'bool') {
      cmd.addOption(new Option(`--${def.flag}`, desc))
    } else if (def.kind === 'multiaddrs') {
      cmd.addOption(new Option(`--${def.flag} <multiaddr>`, desc).argParser(collect))
    } else {
      cmd.addOption(new Option(`--${def.flag} <value>`, desc))
    }
  }
  return cmd
}

/** Parses a non-negative integer argument or throws a UsageError naming it. */
export function parseIndex (value: string, name = 'index'): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`)
  return Number(value)
}

export function formatTable (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}
