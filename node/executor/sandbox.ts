import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The files of the executor an instance process must read besides its module. */
const ENTRY_FILES = ['./process-entry.mjs', './instance-runtime.mjs'].map(f => fileURLToPath(new URL(f, import.meta.url)))

/**
 * Node's permission model: `--experimental-permission` on Node 20 (and 22 before 22.13), `--permission` from
 * 22.13 on. Asked of this Node itself rather than guessed from its version where possible.
 */
export function permissionFlag (versions: NodeJS.ProcessVersions = process.versions): string {
  if (versions === process.versions && process.allowedNodeEnvironmentFlags.has('--permission')) return '--permission'
  const [major, minor] = versions.node.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 13) ? '--permission' : '--experimental-permission'
}

let setprivPath: string | null | undefined

/**
 * util-linux `setpriv --pdeathsig KILL` (Linux): the kernel kills the instance when the peer's thread that started
 * it dies, SIGKILL included, even while user code is in a busy loop. Where it is missing the instance still exits
 * when its IPC channel closes (process-entry.mjs), which covers every case but a busy loop.
 */
export function pdeathsigWrapper (): string | null {
  if (setprivPath !== undefined) return setprivPath
  setprivPath = null
  if (process.platform !== 'linux') return setprivPath
  for (const p of ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv']) {
    if (!existsSync(p)) continue
    const help = spawnSync(p, ['--help'], { encoding: 'utf8', timeout: 5000 })
    if (typeof help.stdout === 'string' && help.stdout.includes('--pdeathsig')) { setprivPath = p; break }
  }
  return setprivPath
}

/**
 * The command line of an instance process: the permission model with read access to `readable` (plus the
 * executor's entry files) and nothing else - no writes, no child processes, no workers, no addons, no WASI.
 */
export function processLaunch (readable: string[], nodeFlags: string[], entryArgs: string[]): { command: string, args: string[] } {
  const node = [
    permissionFlag(),
    ...[...ENTRY_FILES, ...readable].map(f => `--allow-fs-read=${f}`),
    // the permission model's own "experimental" warning would only fill the stderr tail kept for OOM diagnosis
    '--disable-warning=ExperimentalWarning',
    ...nodeFlags,
    ENTRY_FILES[0],
    ...entryArgs
  ]
  const wrapper = pdeathsigWrapper()
  return wrapper === null
    ? { command: process.execPath, args: node }
    : { command: wrapper, args: ['--pdeathsig', 'KILL', '--', process.execPath, ...node] }
}

/** Resident set size of a process, from /proc (Linux); undefined where it cannot be read. */
export function rssBytes (pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

let pageBytes: number | undefined

/**
 * Reads one process's resident set size again and again, cheaply: the memory watchdog samples every running
 * instance 20 times a second, and opening and formatting /proc/PID/status each time showed in the peer's
 * profile. /proc/PID/statm is one short line, read with pread on a descriptor kept open. The page size is
 * taken once from status and statm side by side.
 */
export class RssReader {
  private fd: number | undefined
  private readonly buf = Buffer.alloc(128)
  constructor (private readonly pid: number) {}

  read (): number | undefined {
    try {
      this.fd ??= openSync(`/proc/${this.pid}/statm`, 'r')
      const n = readSync(this.fd, this.buf, 0, this.buf.byteLength, 0)
      const pages = Number(this.buf.toString('latin1', 0, n).split(' ')[1])
      if (!Number.isFinite(pages)) return undefined
      if (pageBytes === undefined) {
        const rss = rssBytes(this.pid)
        if (rss === undefined || pages === 0) return rss
        // the two reads are a moment apart: round to the nearest power of two
        pageBytes = 2 ** Math.round(Math.log2(rss / pages))
      }
      return pages * pageBytes
    } catch {
      this.close()
      return undefined
    }
  }

  close (): void {
    if (this.fd !== undefined) { try { closeSync(this.fd) } catch {} }
    this.fd = undefined
  }
}
