import { describe, expect, it, vi } from 'vitest'
import { StreamState, YamuxStream } from '@libp2p/yamux/stream'
import { installLazyYamuxWindowUpdates } from '../../node/network/yamux-window.ts'

const WINDOW = 256 * 1024

/** the fields sendWindowUpdate reads, on an object that borrows the (patched) prototype method */
function fakeStream (state: StreamState, capacity: number): { frames: Array<{ flag: number, length: number }>, update: () => void } {
  const frames: Array<{ flag: number, length: number }> = []
  const s = {
    state,
    recvWindow: WINDOW,
    recvWindowCapacity: capacity,
    maxStreamWindowSize: 16 * 1024 * 1024,
    epochStart: Date.now(),
    getRTT: () => -1,
    sendFrame: vi.fn((f: { flag: number, length: number }) => { frames.push(f) }),
    getSendFlags: (YamuxStream.prototype as any).getSendFlags
  }
  return { frames, update: () => { (YamuxStream.prototype as any).sendWindowUpdate.call(s) } }
}

describe('lazy yamux window updates', () => {
  it('installs on this yamux version', () => {
    expect(installLazyYamuxWindowUpdates()).toBe(true)
  })

  it('sends no update while more than half the receive window is left', () => {
    installLazyYamuxWindowUpdates()
    const s = fakeStream(StreamState.Established, WINDOW - 100)
    s.update()
    expect(s.frames).toEqual([])
  })

  it('grants the used credit once half the window is used', () => {
    installLazyYamuxWindowUpdates()
    const s = fakeStream(StreamState.Established, WINDOW / 2)
    s.update()
    expect(s.frames.map(f => f.length)).toEqual([WINDOW / 2])
  })

  it('still sends the SYN of a new stream and the ACK of an accepted one', () => {
    installLazyYamuxWindowUpdates()
    const opening = fakeStream(StreamState.Init, WINDOW)
    opening.update()
    const accepting = fakeStream(StreamState.SYNReceived, WINDOW - 100)
    accepting.update()
    expect(opening.frames.length).toBe(1)
    expect(opening.frames[0].flag).not.toBe(0)
    expect(accepting.frames.length).toBe(1)
    expect(accepting.frames[0].flag).not.toBe(0)
  })
})
