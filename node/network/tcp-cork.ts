import type { Libp2p } from '@libp2p/interface'
import type { Socket } from 'node:net'

/**
 * Coalesces the writes a connection makes in one tick into one syscall.
 *
 * @libp2p/tcp writes every buffer it is given with its own `socket.write`, and noise hands it two per frame (the
 * length prefix and the ciphertext), so a gossip message to one peer costs two write syscalls, and a loopback
 * TCP write also runs the receiver's side of the stack in the sender's syscall. Corking the socket until the
 * end of the tick turns every frame written to a connection in that tick into one `writev` (Node's documented
 * cork/uncork-on-nextTick pattern). Profiles of a 4-peer fan showed socket writes as the largest single cost.
 *
 * Each TCP connection's own `sendData` is wrapped when it opens, around whatever is there then: the class's method,
 * or a wrapper that already captured it (the traffic counters of node/metrics wrap every raw connection before it
 * opens). Wrapping the class's prototype once missed exactly those: every connection made before the first one
 * opened (at start, several at once) kept the unwrapped method inside its counter and went out uncorked. A
 * connection whose shape is not the expected one is left alone.
 */
/** writes at least this large are not held back */
const BULK_BYTES = 16 * 1024

interface TcpConnLike { socket?: Socket, sendData?: (data: Iterable<Uint8Array>) => { sentBytes: number, canSendMore: boolean } }

const corked = new WeakSet<object>()

export function corkTcpWrites (node: Libp2p): void {
  node.addEventListener('connection:open', (evt: CustomEvent<unknown>) => {
    const maConn = (evt.detail as { maConn?: TcpConnLike }).maConn
    if (maConn == null || typeof maConn.sendData !== 'function' || maConn.socket == null || typeof maConn.socket.cork !== 'function') return
    if (corked.has(maConn)) return
    corked.add(maConn)
    const send = maConn.sendData
    const socket = maConn.socket
    maConn.sendData = function (this: TcpConnLike, data: Iterable<Uint8Array> & { byteLength?: number }) {
      if (socket.destroyed) return send.call(this, data)
      if ((data.byteLength ?? 0) >= BULK_BYTES) {
        // a bulk transfer goes straight to the kernel: a corked socket buffers everything and reports
        // itself full after one high-water mark, which would pace a large value at one chunk per tick
        uncork(socket)
        return send.call(this, data)
      }
      if (socket.writableCorked === 0) {
        socket.cork()
        process.nextTick(uncork, socket)
      }
      return send.call(this, data)
    }
  })
}

function uncork (socket: Socket): void {
  while (socket.writableCorked > 0) socket.uncork()
}
