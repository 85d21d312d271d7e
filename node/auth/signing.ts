import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import type { RequestStarted, SignedBy } from '../../protocols/events/index.ts'
import type { PrivateKey } from '@libp2p/interface'

/**
 * What a client signs. Domain strings keep a submit signature from ever passing as a cancel one (and
 * the other way round). dag-cbor is deterministic, so signer and verifier build the same bytes.
 */
export const SUBMIT_DOMAIN = 'dflow/submit/1'
export const CANCEL_DOMAIN = 'dflow/cancel/1'

export interface SubmitClaim {
  request: string
  /** the workflow bundle's CID: it covers the YAML and every module */
  workflow: string
  /** input name -> the CID of the value (as DStore stores it) */
  inputs: Record<string, string>
  mode: 'dataflow' | 'control'
  store: 'distributed' | 'central'
  deadlineMs?: number
}

/** A signature that does not verify, or a key that is not one. */
export class SignatureError extends Error {
  static readonly NAME = 'SignatureError'
  constructor (message: string) {
    super(message)
    this.name = SignatureError.NAME
  }
}

function sortedInputs (inputs: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(inputs).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
}

export function submitPayload (claim: SubmitClaim, ts: number): Uint8Array {
  return dagCbor.encode({
    domain: SUBMIT_DOMAIN,
    request: claim.request,
    workflow: claim.workflow,
    inputs: sortedInputs(claim.inputs),
    mode: claim.mode,
    store: claim.store,
    deadlineMs: claim.deadlineMs ?? null,
    ts
  })
}

export function cancelPayload (request: string, ts: number): Uint8Array {
  return dagCbor.encode({ domain: CANCEL_DOMAIN, request, ts })
}

/** The claim a request-started event makes, for checking its signature. */
export function claimOf (started: RequestStarted): SubmitClaim {
  const inputs: Record<string, string> = {}
  for (const [name, ref] of Object.entries(started.inputs)) inputs[name] = ref.cid
  return { request: started.request, workflow: started.workflow, inputs, mode: started.mode, store: started.store, deadlineMs: started.deadlineMs }
}

async function sign (key: PrivateKey, payload: (ts: number) => Uint8Array): Promise<SignedBy> {
  const ts = Date.now()
  const sig = await key.sign(payload(ts))
  return { key: publicKeyToProtobuf(key.publicKey), sig, ts }
}

export async function signSubmit (key: PrivateKey, claim: SubmitClaim): Promise<SignedBy> {
  return sign(key, ts => submitPayload(claim, ts))
}

export async function signCancel (key: PrivateKey, request: string): Promise<SignedBy> {
  return sign(key, ts => cancelPayload(request, ts))
}

/** The signer's public id (PeerId string) when `auth` signs `payload`; throws SignatureError otherwise. */
export function verifySigned (auth: SignedBy, payload: (ts: number) => Uint8Array): string {
  let key
  try {
    key = publicKeyFromProtobuf(auth.key)
  } catch (err) {
    throw new SignatureError(`the signing key is not a public key: ${(err as Error).message}`)
  }
  if (key.type !== 'Ed25519') throw new SignatureError(`the signing key is ${key.type}; identities are Ed25519 (dflow key new FILE)`)
  const signed = payload(auth.ts)
  // the same key, bytes and signature verify the same way every time: a hand-over target checks a request's
  // start when it is announced and again when gossip brings it (an Ed25519 verification each, per request)
  const memo = digestOfParts([auth.key, signed, auth.sig])
  const known = verified.get(memo)
  if (known !== undefined) return known
  const ok = key.verify(signed, auth.sig)
  if (ok !== true) throw new SignatureError(`the signature of ${peerIdFromPublicKey(key).toString()} does not match what it claims to sign`)
  const signer = peerIdFromPublicKey(key).toString()
  verified.set(memo, signer)
  if (verified.size > MAX_VERIFIED) verified.delete(verified.keys().next().value as string)
  return signer
}

/** sha-256 over each part with its length before it, so that no two splits of the same bytes digest alike */
function digestOfParts (parts: Uint8Array[]): string {
  const h = createHash('sha256')
  const len = Buffer.alloc(4)
  for (const p of parts) { len.writeUInt32BE(p.byteLength); h.update(len).update(p) }
  return h.digest('hex')
}

/** signatures verified lately (digest of key, bytes and signature -> signer), oldest dropped first */
const verified = new Map<string, string>()
const MAX_VERIFIED = 4096

/** The public id of a signer, without verifying anything. */
export function signerOf (auth: SignedBy): string {
  return peerIdFromPublicKey(publicKeyFromProtobuf(auth.key)).toString()
}

/** SignedBy as JSON for the HTTP API: bytes as base64. */
export interface SignedByJson { key: string, sig: string, ts: number }

export function signedToJson (s: SignedBy): SignedByJson {
  return { key: Buffer.from(s.key).toString('base64'), sig: Buffer.from(s.sig).toString('base64'), ts: s.ts }
}

export function signedFromJson (v: unknown, where: string): SignedBy {
  const bad = (): never => { throw new SignatureError(`${where} must be {"key": base64, "sig": base64, "ts": epoch ms}`) }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad()
  const r = v as Record<string, unknown>
  if (Object.keys(r).length !== 3 || typeof r.key !== 'string' || typeof r.sig !== 'string' || !Number.isSafeInteger(r.ts) || (r.ts as number) < 0) return bad()
  const key = new Uint8Array(Buffer.from(r.key, 'base64'))
  const sig = new Uint8Array(Buffer.from(r.sig, 'base64'))
  if (key.byteLength === 0 || key.byteLength > 256 || sig.byteLength === 0 || sig.byteLength > 256) return bad()
  return { key, sig, ts: r.ts as number }
}
