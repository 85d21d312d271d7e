/** What /proc says about a peer process: CPU time and resident memory (Linux only). */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

let ticks: number | undefined

/** Clock ticks per second of utime/stime in /proc/PID/stat. */
export function clockTicks (): number {
  if (ticks === undefined) {
    try { ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100 } catch { ticks = 100 }
  }
  return ticks
}

/** utime + stime of a process, in ms. */
export function cpuMs (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // fields after the command name (which may hold spaces and parentheses): state is field 3, utime 14, stime 15
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(rest[11]) + Number(rest[12])) * 1000 / clockTicks()
}

/** VmRSS of a process, in bytes. */
export function rssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (m == null) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(m[1]) * 1024
}

/**
 * Voluntary context switches of a process's main thread: each is a wait in the event loop (epoll) that ended, so
 * at rest it counts the wake-ups (timers, messages), which cost an idle peer more than the work they bring.
 */
export function wakeups (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)
  return m == null ? 0 : Number(m[1])
}
