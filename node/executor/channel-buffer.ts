import { createRequire } from 'node:module'

/**
 * The kernel send buffer of the peer's end of an instance process's IPC channel (a Unix socket pair), widened
 * so that an invocation carrying a large input goes into the socket in one write. With Linux's default (~208 KiB)
 * a 600 KiB input takes three or more turns of the peer's event loop (write, wait until the child has read,
 * write on), and on a busy peer each turn waits behind gossip and other instances' messages: bench cycles
 * measured 9 ms p50 / 45 ms p90 from the peer's send to the child's receipt. The kernel caps the size at
 * net.core.wmem_max (4 MiB on some hosts, 208 KiB by default: raise it with sysctl for the gain, see
 * docs/deploy.md).
 *
 * The child's end (results, outputs) stays as it is: widened too (the peer can reach it with pidfd_getfd), it did
 * not change the time from a function's return to the peer's receipt in bench cycles (20-28 ms mean either way,
 * three runs each): the peer reads up to 32 x 64 KiB per wake-up and the idle child refills the socket meanwhile,
 * whereas in this direction the writer is the busy peer, which must come round again for every refill.
 *
 * Node has no setsockopt for a child's channel: the call goes through koffi (as malloc-trim.ts does). Where
 * that fails (not Linux, no koffi), nothing changes. DFLOW_NO_WIDE_CHANNEL=1 turns it off (A/B runs).
 */
export const CHANNEL_SEND_BUFFER_BYTES = 4 * 1024 * 1024

const SOL_SOCKET = 1
const SO_SNDBUF = 7

type SetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number) => number

let setsockopt: SetSockOpt | undefined | null = null

function load (): SetSockOpt | undefined {
  if (setsockopt !== null) return setsockopt
  setsockopt = undefined
  if (process.platform !== 'linux' || process.env.DFLOW_NO_WIDE_CHANNEL === '1') return undefined
  try {
    // koffi is CommonJS with a native addon found next to its own files: required, and left out of the testnet bundle
    const koffi = createRequire(import.meta.url)('koffi') as { load: (lib: string) => { func: (sig: string) => SetSockOpt } }
    setsockopt = koffi.load('libc.so.6').func('int setsockopt(int, int, int, const void *, uint32_t)')
  } catch {}
  return setsockopt
}

/** Asks for a send buffer of `bytes` on socket `fd`; false when it could not (the channel works as before). */
export function widenSendBuffer (fd: number | undefined, bytes = CHANNEL_SEND_BUFFER_BYTES): boolean {
  if (fd === undefined || !Number.isInteger(fd) || fd < 0) return false
  const fn = load()
  if (fn === undefined) return false
  const value = Buffer.alloc(4)
  value.writeInt32LE(bytes)
  try {
    return fn(fd, SOL_SOCKET, SO_SNDBUF, value, 4) === 0
  } catch {
    return false
  }
}
