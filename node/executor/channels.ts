import { spawn, type ChildProcess } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { widenSendBuffer } from './channel-buffer.ts'
import type { CodeFile } from './code-cache.ts'
import { processLaunch, RssReader } from './sandbox.ts'
import { mallocTunablesEnv } from '../util/malloc-tunables.ts'

/** How step functions are isolated from the peer: a child process under Node's permission model, or a worker thread. */
export type Isolation = 'process' | 'thread'
export const ISOLATIONS: readonly Isolation[] = ['process', 'thread']

/** What the channel knows of an instance's end before the exit itself (the exit code alone cannot tell). */
export type ChannelFailure = { kind: 'oom' } | { kind: 'crash', message: string }

export interface ChannelHandlers {
  message: (msg: any) => void
  failure: (f: ChannelFailure) => void
  /** the instance is gone; `code` is its exit code, `signal` the signal that killed a process */
  exit: (code: number | null, signal: string | null) => void
}

/** The host's end of one instance, whatever runs it: one message format (instance-runtime.mjs) over either. */
export interface InstanceChannel {
  post: (msg: unknown) => void
  /** ends the instance at once; resolves when it has exited */
  kill: () => Promise<void>
  /** idle instances must not keep the host process alive */
  setRef: (ref: boolean) => void
  /** the child's pid (process isolation) */
  readonly pid?: number
}

export interface ChannelOptions {
  code: CodeFile
  memoryMb: number
  handlers: ChannelHandlers
}

const WORKER_ENTRY = new URL('./worker-entry.mjs', import.meta.url)
/** young generation per instance: large enough for throughput, small next to the old-space cap */
function youngMb (memoryMb: number): number {
  return Math.min(32, Math.max(4, Math.floor(memoryMb / 8)))
}

export function threadChannel ({ code, memoryMb, handlers }: ChannelOptions): InstanceChannel {
  const worker = new Worker(WORKER_ENTRY, {
    workerData: code,
    // a clean worker: no tsx loader or host flags (faster start, and user code sees a plain Node)
    execArgv: [],
    resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: youngMb(memoryMb) }
  })
  worker.on('message', handlers.message)
  worker.on('error', (err: Error & { code?: string }) => {
    handlers.failure(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? { kind: 'oom' } : { kind: 'crash', message: `uncaught ${err.name}: ${err.message}` })
  })
  worker.on('exit', code => { handlers.exit(code, null) })
  return {
    post: msg => { worker.postMessage(msg) },
    kill: async () => { await worker.terminate() },
    setRef: ref => { if (ref) worker.ref(); else worker.unref() }
  }
}

/** How often the host samples an instance process's resident memory, while it runs an invocation / while idle. */
const RSS_POLL_MS = 50
const RSS_IDLE_POLL_MS = 1000
/** Resident memory a Node process needs besides the V8 old space: its binary, young generation, code, stacks. */
export const PROCESS_BASE_MB = 64
/** the last bytes of a child's stderr are kept: V8 writes its fatal OOM message there */
const STDERR_TAIL = 4096
const OOM_TEXT = /heap out of memory|Reached heap limit|Allocation failed/i

/**
 * A child process under the permission model. Memory is capped in whole: V8's old space by --max-old-space-size
 * (V8's own clean OOM), and everything else (Buffers, ArrayBuffers, native allocations) by a host-side watchdog
 * that samples the child's RSS from /proc and kills it past memoryMb + PROCESS_BASE_MB + the young generation.
 * The watchdog runs in the host, so a busy loop in the child cannot starve it. (rlimits are not usable: Node
 * cannot set them on a child, and RLIMIT_AS breaks V8, which reserves far more address space than it uses.)
 */
export function processChannel ({ code, memoryMb, handlers }: ChannelOptions): InstanceChannel {
  return launchProcess([code.file], JSON.stringify(code), memoryMb, handlers)
}

/**
 * A stem cell (stem-cells.ts): an instance process booted before anyone knows which module it will run. It may
 * read only `dir` (empty until the host places the module there) and waits for a `load` message naming the file.
 */
export function cellChannel ({ dir, memoryMb, handlers }: { dir: string, memoryMb: number, handlers: ChannelHandlers }): InstanceChannel {
  return launchProcess([`${dir}/`], JSON.stringify({ cell: true }), memoryMb, handlers)
}

function launchProcess (readable: string[], entryArg: string, memoryMb: number, handlers: ChannelHandlers): InstanceChannel {
  const young = youngMb(memoryMb)
  const launch = processLaunch(readable, [
    `--max-old-space-size=${memoryMb}`,
    `--max-semi-space-size=${Math.max(1, Math.floor(young / 2))}`
  ], [entryArg])
  const child: ChildProcess = spawn(launch.command, launch.args, {
    // no host environment (it may hold secrets), only glibc's malloc settings (node/util/malloc-tunables.ts); fd 3
    // is the IPC channel; stderr is kept for V8's fatal messages
    env: mallocTunablesEnv(),
    cwd: '/',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'advanced'
  })
  widenSendBuffer((child.channel as { fd?: number } | null | undefined)?.fd)
  let tail = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => { tail = (tail + s).slice(-STDERR_TAIL) })
  child.on('message', handlers.message)
  let failed = false
  const fail = (f: ChannelFailure): void => { if (!failed) { failed = true; handlers.failure(f) } }
  child.on('error', err => { fail({ kind: 'crash', message: `instance process: ${err.message}` }) })

  const limit = (memoryMb + PROCESS_BASE_MB + 3 * young) * 2 ** 20
  const rssReader = child.pid === undefined ? undefined : new RssReader(child.pid)
  const checkMemory = (): void => {
    if (rssReader === undefined) return
    const rss = rssReader.read()
    if (rss !== undefined && rss > limit) {
      fail({ kind: 'oom' })
      child.kill('SIGKILL')
    }
  }
  // an idle instance runs no invocation (only what its module left behind: timers), so it is sampled less often
  let watchdog: ReturnType<typeof setInterval> | undefined
  const watch = (ms: number): void => {
    clearInterval(watchdog)
    watchdog = setInterval(checkMemory, ms)
    watchdog.unref()
  }
  watch(RSS_POLL_MS)

  const closed = new Promise<void>(resolve => {
    // 'close', not 'exit': stderr has been read to its end, so a V8 OOM message is in the tail
    child.on('close', (code, signal) => {
      clearInterval(watchdog)
      rssReader?.close()
      if (OOM_TEXT.test(tail)) fail({ kind: 'oom' })
      handlers.exit(code, signal)
      resolve()
    })
  })
  let ref = true
  const setRef = (r: boolean): void => {
    if (r === ref) return
    ref = r
    if (child.exitCode === null && child.signalCode === null) watch(r ? RSS_POLL_MS : RSS_IDLE_POLL_MS)
    // the child, its IPC channel and its stderr pipe each hold the event loop
    const handles = [child, child.channel, child.stderr] as Array<{ ref?: () => void, unref?: () => void } | null | undefined>
    for (const h of handles) { if (r) h?.ref?.(); else h?.unref?.() }
  }
  return {
    pid: child.pid,
    post: msg => { if (child.connected) child.send(msg as any) },
    kill: async () => {
      // an unref'd child would let the host's event loop end before 'close' is seen, leaving kill() unsettled
      setRef(true)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await closed
    },
    setRef
  }
}
