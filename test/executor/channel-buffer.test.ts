import { describe, expect, it } from 'vitest'
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { once } from 'node:events'
import { widenSendBuffer } from '../../node/executor/channel-buffer.ts'

type GetSockOpt = (fd: number, level: number, name: number, value: number[], length: number[]) => number
const koffi = createRequire(import.meta.url)('koffi') as { load: (lib: string) => { func: (sig: string) => GetSockOpt } }
const getsockopt = koffi.load('libc.so.6').func('int getsockopt(int, int, int, _Out_ int *, _Inout_ uint32_t *)')
const sendBuffer = (fd: number): number => {
  const out = [0]
  expect(getsockopt(fd, 1 /* SOL_SOCKET */, 7 /* SO_SNDBUF */, out, [4])).toBe(0)
  return out[0]
}

describe.runIf(process.platform === 'linux')('widenSendBuffer: the peer\'s end of an instance\'s IPC channel', () => {
  it('asks the kernel for the size given, up to net.core.wmem_max (Linux reports twice what it grants)', async () => {
    const child = fork('-e', ['process.on("message", () => process.exit(0))'], { execArgv: [], serialization: 'advanced' } as never)
    try {
      await once(child, 'spawn')
      const fd = (child.channel as unknown as { fd: number }).fd
      const before = sendBuffer(fd)
      const max = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'))
      const want = 2 * 1024 * 1024
      expect(widenSendBuffer(fd, want)).toBe(true)
      expect(sendBuffer(fd)).toBe(2 * Math.min(want, max))
      if (max > before / 2) expect(sendBuffer(fd)).toBeGreaterThan(before)
      // a channel that is gone or never was changes nothing and throws nothing
      expect(widenSendBuffer(undefined)).toBe(false)
      expect(widenSendBuffer(-1)).toBe(false)
    } finally {
      child.send('bye')
      await once(child, 'exit')
    }
  })
})
