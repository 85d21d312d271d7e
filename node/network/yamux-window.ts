import { StreamState, YamuxStream } from '@libp2p/yamux/stream'

/** The fields of @libp2p/yamux 8's YamuxStream this patch reads (private in its typings). */
interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

let installed = false

/**
 * js-yamux sends a window-update frame for every data frame it receives, however small: each probe, ack or
 * gossip message costs a second frame back (encrypted, then a socket write of its own), and on a resting peer
 * that was half of all frames. go-yamux (and the yamux spec's intent) grants credit only once half the receive
 * window is used, which this restores: the update is sent when no more than half the window is left, or when
 * the frame must carry a SYN/ACK flag or the stream is paused (the original handles those). A sender never
 * stalls: it may always send half a window before it needs an update, and the update goes out as soon as the
 * capacity falls to half. Window growth (doubling when half a window is used within 4 round trips) keeps
 * go-yamux's meaning. Idempotent; a yamux without the expected fields is left alone.
 */
export function installLazyYamuxWindowUpdates (): boolean {
  if (installed) return true
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate?: () => void }
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function') return false
  proto.sendWindowUpdate = function (this: WindowFields) {
    const flagged = this.state === StreamState.Init || this.state === StreamState.SYNReceived || this.state === StreamState.Paused
    const known = typeof this.recvWindow === 'number' && typeof this.recvWindowCapacity === 'number'
    if (!flagged && known && this.recvWindowCapacity * 2 > this.recvWindow) return
    original.call(this)
  }
  installed = true
  return true
}
