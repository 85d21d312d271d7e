import { afterAll, describe, expect, it } from 'vitest'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { equals } from 'uint8arrays/equals'
import { chunkRanges } from '../../node/dstore/blocks.ts'
import { DEFAULT_WINDOW } from '../../protocols/fetch/constants.ts'
import { connectAll, randomBytes, startPeer, stopPeer, type TestPeer } from './helpers.ts'
import type { CID } from 'multiformats/cid'

const MiB = 1024 * 1024

/**
 * Method: the receiver's blockstore is instrumented. At every block write it records
 *   (bytes received from the sender on the raw TCP connection, as counted by TrafficMetrics)
 *   - (bytes of blocks written so far)
 * i.e. what has crossed the socket but is not yet in the store: the receive pipeline's buffering
 * (socket, noise, yamux, length-prefixed reader, our code) plus framing overhead. Its maximum bounds
 * how many chunks the transfer held in memory at once. It does not see the final decode, which
 * assembles the whole value by design.
 */
describe('large values', () => {
  const peers: TestPeer[] = []
  afterAll(async () => { await Promise.all(peers.map(stopPeer)) })

  it('moves a 64 MiB value holding only a few chunks in memory at once', async () => {
    let written = 0
    let maxBuffered = 0
    let puts = 0
    let senderId = ''
    let receiver: TestPeer | undefined
    class Instrumented extends MemoryBlockstore {
      // a slow disk: without flow control the sender would run ahead and the receiver would buffer the value
      async put (key: CID, val: any, options?: any): Promise<CID> {
        if (receiver != null && senderId !== '') {
          await new Promise(resolve => setTimeout(resolve, 15))
          written += val.byteLength
          puts++
          maxBuffered = Math.max(maxBuffered, receiver.traffic.peer(senderId).received - written)
        }
        return super.put(key, val, options)
      }
    }
    const sender = await startPeer({ replicas: 0 })
    peers.push(sender)
    receiver = await startPeer({ replicas: 0 }, { blockstore: new Instrumented() })
    peers.push(receiver)
    await connectAll(peers)
    const value = randomBytes(64 * MiB, 42)
    const { cid, size } = await sender.store.put(value)
    senderId = sender.libp2p.peerId.toString()
    const receivedBefore = receiver.traffic.peer(senderId).received
    written = receivedBefore // the baseline: traffic before the transfer is not buffered data
    const got = await receiver.store.get(cid, { holders: [sender.libp2p.peerId] })
    expect(got).toBeInstanceOf(Uint8Array)
    expect(equals(got as Uint8Array, value)).toBe(true)
    expect(puts).toBe(chunkRanges(size, MiB, 5).length + 1) // chunks + root
    const wire = receiver.traffic.peer(senderId).received - receivedBefore
    expect(wire).toBeGreaterThan(size)
    console.log(`64 MiB transfer: ${(wire / MiB).toFixed(2)} MiB on the wire, max buffered at the receiver ${(maxBuffered / MiB).toFixed(2)} MiB`)
    // the window + the blocks being verified and written + framing: never the whole value
    expect(maxBuffered).toBeLessThan((DEFAULT_WINDOW + 2) * MiB)
  }, 120_000)
})
