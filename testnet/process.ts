import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** True if pid is a live (not zombie) process that looks like a dflow peer. */
export function isAlive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // a SIGKILLed child of a still-running launcher is a zombie until reaped: kill(pid, 0) succeeds on it
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    if (state === 'Z' || state === 'X') return false
    // guard against pid reuse after the peer died; an empty cmdline is a process in the middle of exec
    // (`ip netns exec` becoming node), not a different one
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    if (cmdline !== '' && !cmdline.includes('peer')) return false
  } catch {
    // no /proc (not Linux): trust kill(pid, 0)
  }
  return true
}

export function signal (pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig) } catch {}
}

/** Waits until none of pids is alive; returns the ones still alive after timeoutMs. */
export async function waitDead (pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs
  let alive = pids.filter(isAlive)
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50)
    alive = alive.filter(isAlive)
  }
  return alive
}

/** SIGTERM, then SIGKILL after graceMs; returns the pids that survived even that. */
export async function terminate (pids: number[], graceMs = 5000): Promise<number[]> {
  const alive = pids.filter(isAlive)
  for (const pid of alive) signal(pid, 'SIGTERM')
  const stubborn = await waitDead(alive, graceMs)
  for (const pid of stubborn) signal(pid, 'SIGKILL')
  return waitDead(stubborn, 5000)
}

/** n distinct free TCP ports on 127.0.0.1, all held open together so none is handed out twice. */
export async function freePorts (n: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < n; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', () => { resolve() })
      })
      const addr = server.address()
      if (addr == null || typeof addr === 'string') throw new Error('no port assigned')
      ports.push(addr.port)
    }
    return ports
  } finally {
    await Promise.all(servers.map(async s => new Promise<void>(resolve => { s.close(() => { resolve() }) })))
  }
}
