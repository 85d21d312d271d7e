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
 * The transport's connection class is not exported, so its `sendData` is wrapped on the prototype of the
 * first TCP connection seen (all TCP connections share it); a connection whose shape is not the expected one
 * is left alone.
 */
const patched = new WeakSet<object>()
/** writes at least this large are not held back */
const BULK_BYTES = 16 * 1024

interface TcpConnLike { socket?: Socket, sendData?: (data: Iterable<Uint8Array>) => { sentBytes: number, canSendMore: boolean } }

export function corkTcpWrites (node: Libp2p): void {
  const onOpen = (evt: CustomEvent<unknown>): void => {
    const maConn = (evt.detail as { maConn?: TcpConnLike }).maConn
    if (maConn == null || typeof maConn.sendData !== 'function' || maConn.socket == null || typeof maConn.socket.cork !== 'function') return
    const proto = Object.getPrototypeOf(maConn) as TcpConnLike
    if (patched.has(proto) || !Object.prototype.hasOwnProperty.call(proto, 'sendData')) return
    patched.add(proto)
    const original = proto.sendData as NonNullable<TcpConnLike['sendData']>
    proto.sendData = function (this: TcpConnLike, data: Iterable<Uint8Array> & { byteLength?: number }) {
      const socket = this.socket
      if (socket == null || socket.destroyed) return original.call(this, data)
      if ((data.byteLength ?? 0) >= BULK_BYTES) {
        // a bulk transfer goes straight to the kernel: a corked socket buffers everything and reports
        // itself full after one high-water mark, which would pace a large value at one chunk per tick
        uncork(socket)
        return original.call(this, data)
      }
      if (socket.writableCorked === 0) {
        socket.cork()
        process.nextTick(uncork, socket)
      }
      return original.call(this, data)
    }
    node.removeEventListener('connection:open', onOpen)
  }
  node.addEventListener('connection:open', onOpen)
}

function uncork (socket: Socket): void {
  while (socket.writableCorked > 0) socket.uncork()
}
