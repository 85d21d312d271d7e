import { randomBytes } from 'node:crypto'
import { RPC } from '@libp2p/gossipsub/message'
import { peerIdFromString } from '@libp2p/peer-id'
import { EVENTS_TOPIC } from '../events/constants.ts'
import { BATCH_DIGEST_BYTES, eventDigest, MAX_BATCH_EVENTS } from '../events/batch.ts'
import type { PeerId, PrivateKey } from '@libp2p/interface'

/**
 * Proof that an event's `from` published it: the gossipsub signature its origin made when it published
 * the event on EVENTS_TOPIC, with that message's sequence number. A peer relaying someone else's event over
 * sync sends the proof along, so a relay cannot forge events in another peer's name. The bytes signed are
 * gossipsub's own: "libp2p-pubsub:" + protobuf Message { from, data, seqno, topic }.
 *
 * An event that came in a batch has a batch proof instead: one signature of the publisher over the sha-256 of
 * every event of the batch (`batch`, BATCH_DIGEST_BYTES each, in order), "dflow-event-batch:" + seqno + digests.
 * The publisher signs once per batch rather than once per event (signing each event was 4% of a peer's CPU on
 * a profiled fan); the event is proven when its own digest is one of them and the signature verifies.
 */
export interface EventProof {
  /** the gossip message's sequence number, 8 bytes big-endian (a batch proof: random, as a nonce) */
  seqno: Uint8Array
  signature: Uint8Array
  /** a batch proof: the digests of the events signed together, this one's among them */
  batch?: Uint8Array
}

export const PROOF_SEQNO_BYTES = 8
export const MAX_PROOF_SIGNATURE_BYTES = 1024

const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')
/** distinct from gossipsub's and noise's prefixes, so a batch proof can never pass for another signature by the same key */
const BATCH_SIGN_PREFIX = new TextEncoder().encode('dflow-event-batch:')
/** a batch proof covers at most this many digests' bytes */
export const MAX_PROOF_BATCH_BYTES = MAX_BATCH_EVENTS * BATCH_DIGEST_BYTES

function batchSignedBytes (seqno: Uint8Array, digests: Uint8Array): Uint8Array {
  const out = new Uint8Array(BATCH_SIGN_PREFIX.byteLength + seqno.byteLength + digests.byteLength)
  out.set(BATCH_SIGN_PREFIX)
  out.set(seqno, BATCH_SIGN_PREFIX.byteLength)
  out.set(digests, BATCH_SIGN_PREFIX.byteLength + seqno.byteLength)
  return out
}

/** Whether `digests` (a batch proof's) holds the sha-256 of `data` at a digest boundary. */
function holdsDigest (digests: Uint8Array, data: Uint8Array): boolean {
  if (digests.byteLength === 0 || digests.byteLength % BATCH_DIGEST_BYTES !== 0 || digests.byteLength > MAX_PROOF_BATCH_BYTES) return false
  const own = eventDigest(data)
  for (let at = 0; at < digests.byteLength; at += BATCH_DIGEST_BYTES) {
    if (Buffer.compare(own, digests.subarray(at, at + BATCH_DIGEST_BYTES)) === 0) return true
  }
  return false
}

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

/** One proof for the events of a batch this peer publishes (`digests`: batchDigests of their bytes, in order). */
export async function signBatchProof (privateKey: PrivateKey, digests: Uint8Array): Promise<EventProof> {
  const seqno = new Uint8Array(randomBytes(PROOF_SEQNO_BYTES))
  return { seqno, signature: await privateKey.sign(batchSignedBytes(seqno, digests)), batch: digests }
}

/** Whether `proof` shows that peer `from` published exactly `data`. Never throws. */
export async function verifyEventProof (from: string, data: Uint8Array, proof: EventProof): Promise<boolean> {
  try {
    if (proof.seqno.byteLength !== PROOF_SEQNO_BYTES || proof.signature.byteLength > MAX_PROOF_SIGNATURE_BYTES) return false
    if (proof.batch !== undefined && !holdsDigest(proof.batch, data)) return false
    const peer = peerIdFromString(from)
    if (peer.publicKey === undefined) return false
    const signed = proof.batch !== undefined ? batchSignedBytes(proof.seqno, proof.batch) : signedBytes(peer, data, proof.seqno)
    return await peer.publicKey.verify(signed, proof.signature)
  } catch {
    return false
  }
}
