import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { isAlive } from './process.ts'
import { BUNDLE_ENV } from './bundle.ts'
import type { HealthResponse } from '../node/api/health.ts'
import { mallocTunablesEnv } from '../node/util/malloc-tunables.ts'

/** The CLI entry; peers are spawned as `node bin/dflow.js peer ...` so the pid is the peer's own process. */
export const DFLOW_BIN = fileURLToPath(new URL('../bin/dflow.js', import.meta.url))

export class PeerStartError extends Error {
  static readonly NAME = 'PeerStartError'
  constructor (message: string) {
    super(message)
    this.name = PeerStartError.NAME
  }
}

export interface SpawnPeerOptions {
  listen: string
  apiPort: number
  dataDir: string
  log: string
  bootstrap: string[]
  flags: string[]
  /** truncate the log (fresh `up`) instead of appending (restart) */
  truncateLog?: boolean
  /** run the peer from this bundle of the CLI (testnet/bundle.ts) instead of through tsx */
  bundle?: string
}

export interface SpawnedPeer {
  pid: number
  /** the exit code or signal once the process ended (only observed while this process lives) */
  exited: () => string | undefined
}

/**
 * Node flags every testnet peer runs with (docs/deploy.md recommends them for `dflow peer` too).
 * - `--max-semi-space-size=8`: V8's young generation grows to 2 x 16 MiB semi-spaces under a burst (a peer's
 *   start-up is one) and gives the pages back only when the memory reducer runs, tens of seconds into rest:
 *   capped at 2 x 8 MiB, an idle peer holds about 10-20 MiB less, while a 4-peer fan spends about as much time
 *   in scavenges as before (2 MiB or 4 MiB semi-spaces tripled it).
 *
 * - `--ticks-before-optimization=20` (V8's default 3): a peer's code is large and each request runs most of it
 *   only a few times, so TurboFan kept compiling lukewarm functions for tens of requests (perf of a listening peer
 *   in a chain, requests 14-30: 21% of its CPU in the optimizing compiler's threads). Hot loops (codecs, hashing
 *   glue) still reach the optimizing tier within a few requests; the rest stays in baseline code. Side by side on
 *   4 peers, peer CPU per request after 2 warm-ups: fan 666 -> 536 ms and 738 / 652 -> 679 / 696 ms, chain
 *   743 / 774 -> 628 / 558 ms (`--max-opt=1`, no optimizing tier at all, also cut the warm-up CPU but left later
 *   requests ~40% slower; maglev as top tier and `--no-turbo-inlining` were in between).
 *
 * - `--no-memory-reducer`: the peer's idle GC (node/util/idle-gc.ts) runs one scavenge and one full GC once the
 *   peer is quiet; V8's memory reducer repeated that with two or three compacting GCs 8 s or more later, about
 *   0.2 s of CPU per peer, 40-65 s after an idle 4-peer testnet started (most of its idle CPU in that minute).
 *
 * Not here: `--heap-growing-percent=30 --compact-on-every-full-gc`. They keep the old generation near what is live
 * under steady load (a request's state lives its retention, long enough to be promoted, then dies; by default V8
 * lets the dead state fill the old space to several times what is live before a full GC), which brought RSS after a
 * 1000-request burst from 1.42-1.68x to 1.13-1.19x of its value after 100 (docs/chaos.md); but the full GCs they
 * force cost request latency: cycles (FaaSFlow, 4 peers) p50 913 / 777 ms dataflow / control with them against
 * 786 / 579 without, in one session. Latency comes first; a memory-tight deployment can add them
 * (DFLOW_PEER_NODE_ARGS, or on the node command line, docs/deploy.md).
 */
export const PEER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--no-memory-reducer', ...tierUpFlags(process.versions.v8)]

/**
 * The environment a peer process runs with, beneath the caller's own (which wins). glibc gives each thread that
 * mallocs its own arena, up to 8 per core; a peer's threads (libuv pool, V8's GC and compiler helpers) each grew one
 * and kept the freed memory of bursts in it: RSS at rest rose 6-20% over 1000 requests. Two arenas bound that
 * (1.03-1.11x at rest, `npm run bench:soak`) with no CPU cost measured (a 4-peer fan, docs/chaos.md). Large values
 * are served from malloc's heap on transparent huge pages (GLIBC_TUNABLES: node/util/malloc-tunables.ts).
 */
export const PEER_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', ...mallocTunablesEnv() }

/**
 * The tier-up flag exists in V8 11 (Node 20), not in V8 12 (Node 22 counts invocations instead, and a node given an
 * unknown V8 flag refuses to start); its effect was measured on Node 20 only, so other versions run V8's default.
 */
export function tierUpFlags (v8Version: string): string[] {
  return v8Version.startsWith('11.') ? ['--ticks-before-optimization=20'] : []
}

/**
 * The node flags of a peer process: PEER_NODE_FLAGS, then DFLOW_PEER_NODE_ARGS (later flags win), e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile a testnet.
 */
export function peerNodeArgs (): string[] {
  return [...PEER_NODE_FLAGS, ...(process.env.DFLOW_PEER_NODE_ARGS ?? '').split(/\s+/).filter(a => a !== '')]
}

export function spawnPeer (opts: SpawnPeerOptions): SpawnedPeer {
  const args = [...peerNodeArgs(), DFLOW_BIN, 'peer', '--listen', opts.listen, '--api-port', String(opts.apiPort), '--data-dir', opts.dataDir]
  for (const b of opts.bootstrap) args.push('--bootstrap', b)
  args.push(...opts.flags)
  const fd = openSync(opts.log, opts.truncateLog === true ? 'w' : 'a')
  let exited: string | undefined
  try {
    const child = spawn(process.execPath, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...PEER_ENV, ...process.env, ...(opts.bundle === undefined ? {} : { [BUNDLE_ENV]: opts.bundle }) }
    })
    if (child.pid == null) throw new PeerStartError(`cannot spawn ${process.execPath} ${args.join(' ')}`)
    child.once('exit', (code, sig) => { exited = sig ?? `exit code ${code}` })
    child.once('error', err => { exited = err.message })
    // the launcher may exit while the peer keeps running
    child.unref()
    return { pid: child.pid, exited: () => exited }
  } finally {
    closeSync(fd)
  }
}

async function logTail (log: string, lines = 8): Promise<string> {
  try {
    const text = await readFile(log, 'utf8')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/** Polls GET /v1/health until it answers with the expected PeerId. */
export async function waitHealthy (api: string, peerId: string, spawned: SpawnedPeer, log: string, timeoutMs: number): Promise<HealthResponse> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const exited = spawned.exited() ?? (isAlive(spawned.pid) ? undefined : 'process gone')
    if (exited != null) {
      throw new PeerStartError(`peer ${peerId} (pid ${spawned.pid}) exited before it was ready (${exited}); log ${log}:\n${await logTail(log)}`)
    }
    try {
      const res = await fetch(`${api}/v1/health`, { signal: AbortSignal.timeout(2000) })
      if (res.ok) {
        const health = await res.json() as HealthResponse
        if (health.peerId !== peerId) throw new PeerStartError(`${api} answers as ${health.peerId}, expected ${peerId} (port taken by another peer?)`)
        return health
      }
    } catch (err) {
      if (err instanceof PeerStartError) throw err
    }
    if (Date.now() > deadline) {
      throw new PeerStartError(`peer ${peerId} (pid ${spawned.pid}) not ready after ${timeoutMs} ms; log ${log}:\n${await logTail(log)}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
