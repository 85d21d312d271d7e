import { randomBytes } from 'node:crypto'
import { RPC } from '@libp2p/gossipsub/message'
import { peerIdFromString } from '@libp2p/peer-id'
import { EVENTS_TOPIC } from '../events/constants.ts'
import type { PeerId, PrivateKey } from '@libp2p/interface'

/**
 * Proof that an event's `from` published it: the gossipsub signature its origin made when it published
 * the event on EVENTS_TOPIC, with that message's sequence number. A peer relaying someone else's event over
 * sync sends the proof along, so a relay cannot forge events in another peer's name. The bytes signed are
 * gossipsub's own: "libp2p-pubsub:" + protobuf Message { from, data, seqno, topic }.
 */
export interface EventProof {
  /** the gossip message's sequence number, 8 bytes big-endian */
  seqno: Uint8Array
  signature: Uint8Array
}

export const PROOF_SEQNO_BYTES = 8
export const MAX_PROOF_SIGNATURE_BYTES = 1024

const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')

function signedBytes (from: PeerId, data: Uint8Array, seqno: Uint8Array): Uint8Array {
  const body = RPC.Message.encode({ from: from.toMultihash().bytes, data, seqno, topic: EVENTS_TOPIC })
  const out = new Uint8Array(SIGN_PREFIX.byteLength + body.byteLength)
  out.set(SIGN_PREFIX)
  out.set(body, SIGN_PREFIX.byteLength)
  return out
}

/** The proof carried by a gossipsub message as the bus receives it (a signed message). */
export function proofFromGossip (msg: { sequenceNumber: bigint, signature: Uint8Array }): EventProof {
  const seqno = new Uint8Array(PROOF_SEQNO_BYTES)
  new DataView(seqno.buffer).setBigUint64(0, BigInt.asUintN(64, msg.sequenceNumber), false)
  return { seqno, signature: msg.signature }
}

/** A proof for an event this peer publishes, made as gossipsub would (for events that reach peers by sync only). */
export async function signEventProof (privateKey: PrivateKey, from: PeerId, data: Uint8Array): Promise<EventProof> {
  const seqno = new Uint8Array(randomBytes(PROOF_SEQNO_BYTES))
  return { seqno, signature: await privateKey.sign(signedBytes(from, data, seqno)) }
}

/** Whether `proof` shows that peer `from` published exactly `data`. Never throws. */
export async function verifyEventProof (from: string, data: Uint8Array, proof: EventProof): Promise<boolean> {
  try {
    if (proof.seqno.byteLength !== PROOF_SEQNO_BYTES || proof.signature.byteLength > MAX_PROOF_SIGNATURE_BYTES) return false
    const peer = peerIdFromString(from)
    if (peer.publicKey === undefined) return false
    return await peer.publicKey.verify(signedBytes(peer, data, proof.seqno), proof.signature)
  } catch {
    return false
  }
}
