import { readFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { ISOLATIONS, type Isolation } from './executor/channels.ts'
import { DEFAULT_LIMITS } from './executor/limits.ts'

/** Every setting of a peer. Defaults live in DEFAULT_CONFIG; the loader merges defaults < JSON file < flags. */
export interface PeerConfig {
  /** libp2p listen multiaddrs (non-loopback ones need a swarm key). @default ['/ip4/127.0.0.1/tcp/0'] */
  listen: string[]
  /** multiaddrs (with /p2p/<id>) to dial at start. @default [] */
  bootstrap: string[]
  /** HTTP API port; 0 picks any free port. @default 0 */
  apiPort: number
  /** HTTP API host. @default '127.0.0.1' */
  apiHost: string
  /** Directory for the private key and stored values; none = fresh identity, nothing persisted. @default undefined */
  dataDir?: string
  /** Addresses other peers dial (instead of the listen addresses), e.g. the machine's public address. @default [] */
  announce: string[]
  /** The private network's pre-shared key file (`dflow key swarm FILE`); needed for non-loopback addresses. @default undefined */
  swarmKey?: string
  /** File of identity ids (one a line, `#` comments) allowed to submit; peers of the network are always allowed. @default undefined */
  authorizedSubmitters?: string
  /** Function slots (concurrent function runs) of this peer. @default 4 */
  slots: number
  /** Copies kept of every stored value. @default 2 */
  replicas: number
  /** Values up to this many bytes travel inline in events instead of by CID. @default 16384 */
  inlineLimit: number
  /** Chunk size for large values, in bytes. @default 1048576 */
  chunkSize: number
  /** Local store capacity in bytes. @default 2147483648 (2 GiB) */
  storeCapacity: number
  /** How long request values are retained, in ms. @default 3600000 */
  retentionMs: number
  /** A claim also lapses when its claimant was not heard for this long, in ms; 0: membership (probes) alone decides. @default 0 */
  leaseMs: number
  /** A failed peer (crashed or cut off) is presumed dead within about this long, in ms. @default 5000 */
  failureTimeoutMs: number
  /** Membership probe period: each period a peer probes one other (SWIM), in ms. @default 1000 */
  heartbeatMs: number
  /** A warm function instance idle for this long is stopped, in ms. @default 60000 */
  idleInstanceMs: number
  /** Gossipsub heartbeat, in ms. @default 1000 */
  gossipHeartbeatMs: number
  /** Turn off the same-host fast path (values move over libp2p streams even between peers of one host). @default false */
  noSharedStore: boolean
  /**
   * How step functions are isolated: 'process' (child processes under Node's permission model: no file system
   * beyond the module, no child processes, no workers; memory capped in whole) or 'thread' (worker threads of the
   * peer, with the full Node API). @default 'process'
   */
  isolation: Isolation
  /**
   * Process isolation: instance processes booted ahead of need (stem cells), so a cold start costs only the
   * module's load. At least this many per memory size in use, more after a larger burst of starts (up to 8 x
   * slots); 0 turns them off. @default 4
   */
  stemCells: number
  /** Largest `memory:` a step may ask for, MiB; a workflow over it is refused. @default 4096 */
  maxMemoryMb: number
  /** Largest `timeout:` a step may ask for, ms. @default 900000 (15m) */
  maxTimeoutMs: number
  /** Largest `retries:` a step may ask for. @default 10 */
  maxRetries: number
  /** Anti-entropy: while requests are unfinished, compare event logs with one peer this often, in ms; 0 = off. @default 1000 */
  syncIntervalMs: number
  /** Fault injection: drop this fraction (0-1, seeded) of the readiness events received. @default 0 */
  dropEvents: number
  /** Log lines on stderr: 'text' or 'json' (one JSON object per line). @default 'text' */
  logFormat: 'text' | 'json'
  /** Export libp2p's own metrics (@libp2p/prometheus-metrics) on GET /metrics. @default false */
  libp2pMetrics: boolean
}

export const DEFAULT_CONFIG: Readonly<PeerConfig> = Object.freeze({
  listen: ['/ip4/127.0.0.1/tcp/0'],
  bootstrap: [],
  apiPort: 0,
  apiHost: '127.0.0.1',
  dataDir: undefined,
  announce: [],
  swarmKey: undefined,
  authorizedSubmitters: undefined,
  slots: 4,
  replicas: 2,
  inlineLimit: 16384,
  chunkSize: 1048576,
  storeCapacity: 2 * 1024 ** 3,
  retentionMs: 3_600_000,
  leaseMs: 0,
  failureTimeoutMs: 5000,
  heartbeatMs: 1000,
  idleInstanceMs: 60_000,
  gossipHeartbeatMs: 1000,
  noSharedStore: false,
  isolation: 'process',
  stemCells: 4,
  maxMemoryMb: DEFAULT_LIMITS.maxMemoryMb,
  maxTimeoutMs: DEFAULT_LIMITS.maxTimeoutMs,
  maxRetries: DEFAULT_LIMITS.maxRetries,
  syncIntervalMs: 1000,
  dropEvents: 0,
  logFormat: 'text',
  libp2pMetrics: false
})

export class ConfigError extends Error {
  static readonly NAME = 'ConfigError'
  /** the config key or flag at fault */
  readonly key: string
  constructor (key: string, message: string) {
    super(message)
    this.name = ConfigError.NAME
    this.key = key
  }
}

export type FlagKind = 'multiaddrs' | 'port' | 'string' | 'path' | 'bool' | 'count' | 'natural' | 'bytes' | 'duration' | 'fraction'

export interface FlagDef {
  key: keyof PeerConfig
  /** kebab-case flag name without dashes */
  flag: string
  kind: FlagKind
  description: string
  /** `dflow testnet up` passes this flag through to every peer (the rest it sets itself) */
  passThrough: boolean
  /** for kind 'string': the accepted values */
  choices?: readonly string[]
}

/** The `dflow peer` flags, one per setting. Other commands reuse them (see addPeerOptions). */
export const PEER_FLAGS: readonly FlagDef[] = [
  { key: 'listen', flag: 'listen', kind: 'multiaddrs', passThrough: false, description: 'libp2p listen multiaddr (repeatable)' },
  { key: 'bootstrap', flag: 'bootstrap', kind: 'multiaddrs', passThrough: false, description: 'bootstrap peer multiaddr with /p2p/<id> (repeatable)' },
  { key: 'apiPort', flag: 'api-port', kind: 'port', passThrough: false, description: 'HTTP API port, 0 = any' },
  { key: 'apiHost', flag: 'api-host', kind: 'string', passThrough: false, description: 'HTTP API host' },
  { key: 'dataDir', flag: 'data-dir', kind: 'path', passThrough: false, description: 'data directory (private key, stored values)' },
  { key: 'announce', flag: 'announce', kind: 'multiaddrs', passThrough: false, description: 'address other peers dial, e.g. /ip4/203.0.113.5/tcp/4001 (repeatable)' },
  { key: 'swarmKey', flag: 'swarm-key', kind: 'path', passThrough: true, description: 'private network key file (dflow key swarm FILE): only peers with the same key connect; required for non-loopback addresses' },
  { key: 'authorizedSubmitters', flag: 'authorized-submitters', kind: 'path', passThrough: true, description: 'file of identity ids allowed to submit (one a line, # comments); peers of the network are always allowed' },
  { key: 'slots', flag: 'slots', kind: 'count', passThrough: true, description: 'function slots' },
  { key: 'replicas', flag: 'replicas', kind: 'natural', passThrough: true, description: 'copies kept of each stored value besides the producer\'s (0: none)' },
  { key: 'inlineLimit', flag: 'inline-limit', kind: 'bytes', passThrough: true, description: 'largest value sent inline in events (bytes, e.g. 16k)' },
  { key: 'chunkSize', flag: 'chunk-size', kind: 'bytes', passThrough: true, description: 'chunk size of large values (bytes, e.g. 1m)' },
  { key: 'storeCapacity', flag: 'store-capacity', kind: 'bytes', passThrough: true, description: 'local store capacity (bytes, e.g. 2g)' },
  { key: 'retentionMs', flag: 'retention', kind: 'duration', passThrough: true, description: 'retention of request values (e.g. 1h, 30s, 500ms)' },
  { key: 'leaseMs', flag: 'lease', kind: 'duration', passThrough: true, description: 'a claim also lapses when its claimant was not heard for this long (0: membership alone decides, the default)' },
  { key: 'failureTimeoutMs', flag: 'failure-timeout', kind: 'duration', passThrough: true, description: 'a failed peer is presumed dead within about this long' },
  { key: 'heartbeatMs', flag: 'heartbeat', kind: 'duration', passThrough: true, description: 'membership probe period (one peer probed per period)' },
  { key: 'idleInstanceMs', flag: 'idle-instance', kind: 'duration', passThrough: true, description: 'idle time before a warm instance stops' },
  { key: 'gossipHeartbeatMs', flag: 'gossip-heartbeat', kind: 'duration', passThrough: true, description: 'gossipsub heartbeat' },
  { key: 'noSharedStore', flag: 'no-shared-store', kind: 'bool', passThrough: true, description: 'move values over libp2p even between peers of one host (no /dev/shm fast path)' },
  { key: 'isolation', flag: 'isolation', kind: 'string', choices: ISOLATIONS, passThrough: true, description: 'how functions run: process (sandboxed child processes) or thread (worker threads, full Node API)' },
  { key: 'stemCells', flag: 'stem-cells', kind: 'natural', passThrough: true, description: 'process isolation: instance processes kept booted ahead of need, at least (0: none)' },
  { key: 'maxMemoryMb', flag: 'max-memory', kind: 'count', passThrough: true, description: 'largest memory (MiB) a step may ask for' },
  { key: 'maxTimeoutMs', flag: 'max-timeout', kind: 'duration', passThrough: true, description: 'largest timeout a step may ask for' },
  { key: 'maxRetries', flag: 'max-retries', kind: 'natural', passThrough: true, description: 'largest retries a step may ask for' },
  { key: 'syncIntervalMs', flag: 'sync-interval', kind: 'duration', passThrough: true, description: 'anti-entropy period while requests are unfinished (0: off)' },
  { key: 'dropEvents', flag: 'drop-events', kind: 'fraction', passThrough: true, description: 'fault injection: drop this fraction (0-1) of received readiness events, seeded' },
  { key: 'logFormat', flag: 'log-format', kind: 'string', choices: ['text', 'json'], passThrough: true, description: 'log lines on stderr: text, or json (one object per line)' },
  { key: 'libp2pMetrics', flag: 'libp2p-metrics', kind: 'bool', passThrough: true, description: 'also export libp2p\'s own metrics on GET /metrics (costs memory, see docs/metrics.md)' }
]

const BY_KEY = new Map(PEER_FLAGS.map(f => [f.key as string, f]))
const BY_FLAG = new Map(PEER_FLAGS.map(f => [f.flag, f]))

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 }

/** `30s`, `500ms`, `2m`, `1h` or a number of milliseconds. */
export function parseDuration (value: unknown, where = 'duration'): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value)
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value) : null
  if (m == null) throw new ConfigError(where, `${where}: invalid duration ${JSON.stringify(value)} (use e.g. 500ms, 30s, 2m or a number of ms)`)
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms'])
}

/** A fraction between 0 and 1 (`0.1`, `.25`). */
export function parseFraction (value: unknown, where = 'fraction'): number {
  const n = typeof value === 'string' && /^\s*\d*\.?\d+\s*$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 1) throw new ConfigError(where, `${where}: expected a fraction between 0 and 1, got ${JSON.stringify(value)}`)
  return n
}

/** `16384`, `16k`, `1m`, `2g` (binary units). */
export function parseBytes (value: unknown, where = 'bytes'): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value) : null
  const unit = m == null ? undefined : BYTE_UNITS[m[2].toLowerCase()]
  if (m == null || unit == null) throw new ConfigError(where, `${where}: invalid size ${JSON.stringify(value)} (use e.g. 16384, 16k, 1m, 2g)`)
  return Math.round(Number(m[1]) * unit)
}

function parseValue (def: FlagDef, value: unknown, where: string): unknown {
  const bad = (what: string): never => { throw new ConfigError(where, `${where}: ${what}, got ${JSON.stringify(value)}`) }
  switch (def.kind) {
    case 'multiaddrs': {
      const list = Array.isArray(value) ? value : [value]
      return list.map(v => {
        if (typeof v !== 'string') bad('expected a multiaddr string')
        try { multiaddr(v as string) } catch (err) { throw new ConfigError(where, `${where}: invalid multiaddr ${JSON.stringify(v)}: ${(err as Error).message}`) }
        return v as string
      })
    }
    case 'port': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) bad('expected a port number 0-65535')
      return n
    }
    case 'count':
    case 'natural': {
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
      const min = def.kind === 'count' ? 1 : 0
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min) bad(min === 1 ? 'expected a positive integer' : 'expected a non-negative integer')
      return n
    }
    case 'string':
    case 'path':
      if (typeof value !== 'string' || value === '') bad('expected a non-empty string')
      if (def.choices !== undefined && !def.choices.includes(value as string)) bad(`expected one of ${def.choices.join(', ')}`)
      return value
    case 'bool':
      if (typeof value !== 'boolean') bad('expected true or false')
      return value
    case 'fraction': return parseFraction(value, where)
    case 'bytes': return parseBytes(value, where)
    case 'duration': return parseDuration(value, where)
  }
}

/** Validates a partial config whose keys are PeerConfig keys (as in the JSON file). */
export function parseConfigObject (obj: unknown, source = 'config'): Partial<PeerConfig> {
  if (obj == null || typeof obj !== 'object' || Array.isArray(obj)) throw new ConfigError(source, `${source}: expected a JSON object`)
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(obj)) {
    const def = BY_KEY.get(key)
    if (def == null) throw new ConfigError(key, `${source}: unknown setting "${key}" (known: ${[...BY_KEY.keys()].join(', ')})`)
    out[key] = parseValue(def, value, `${source}: ${key}`)
  }
  return out as Partial<PeerConfig>
}

/** Validates flag values keyed by camelCase config key (as commander gives them) and names the --flag on error. */
export function parseFlagValues (flags: Record<string, unknown>): Partial<PeerConfig> {
  const out: Record<string, unknown> = {}
  for (const def of PEER_FLAGS) {
    let value = flags[def.key] ?? flags[camel(def.flag)]
    // commander gives a lone `--no-x` flag as `x: false` (and `x: true` when absent)
    if (value === undefined && def.kind === 'bool' && def.flag.startsWith('no-')) {
      value = flags[camel(def.flag.slice(3))] === false ? true : undefined
    }
    if (value === undefined) continue
    out[def.key] = parseValue(def, value, `--${def.flag}`)
  }
  return out as Partial<PeerConfig>
}

export interface LoadConfigOptions {
  /** path of a JSON file with PeerConfig keys */
  configFile?: string
  /** flag values keyed by config key or camelCased flag name */
  flags?: Record<string, unknown>
}

/** defaults < JSON file < flags */
export async function loadConfig (opts: LoadConfigOptions = {}): Promise<PeerConfig> {
  let fromFile: Partial<PeerConfig> = {}
  if (opts.configFile != null) {
    let text: string
    try { text = await readFile(opts.configFile, 'utf8') } catch (err) {
      throw new ConfigError('--config', `--config: cannot read ${opts.configFile}: ${(err as Error).message}`)
    }
    let json: unknown
    try { json = JSON.parse(text) } catch (err) {
      throw new ConfigError('--config', `--config: ${opts.configFile} is not valid JSON: ${(err as Error).message}`)
    }
    fromFile = parseConfigObject(json, opts.configFile)
  }
  return resolveConfig({ ...fromFile, ...parseFlagValues(opts.flags ?? {}) })
}

/** Fills defaults into a partial config (validating it); for programmatic use. */
export function resolveConfig (partial: Partial<PeerConfig> = {}): PeerConfig {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined))
  const checked = parseConfigObject(defined, 'config')
  return { ...DEFAULT_CONFIG, listen: [...DEFAULT_CONFIG.listen], bootstrap: [], announce: [], ...checked }
}

/** Turns a partial config back into `dflow peer` arguments (used by the testnet launcher). */
export function configToArgs (partial: Partial<PeerConfig>): string[] {
  const args: string[] = []
  for (const [key, value] of Object.entries(partial)) {
    const def = BY_KEY.get(key)
    if (def == null) throw new ConfigError(key, `unknown setting "${key}"`)
    if (value === undefined) continue
    if (def.kind === 'bool') { if ((value as unknown) === true) args.push(`--${def.flag}`); continue }
    for (const v of Array.isArray(value) ? value : [value]) args.push(`--${def.flag}`, String(v))
  }
  return args
}

export function flagDef (flagOrKey: string): FlagDef | undefined {
  return BY_FLAG.get(flagOrKey) ?? BY_KEY.get(flagOrKey)
}

function camel (flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}
