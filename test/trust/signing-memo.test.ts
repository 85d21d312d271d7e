import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { cancelPayload, signCancel, verifySigned } from '../../node/auth/signing.ts'

describe('verified signatures are remembered, forgeries are not', () => {
  it('the same signature verifies again (from the memo); any change to the bytes, signature or key still fails', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const auth = await signCancel(key, 'r1')
    const signer = peerIdFromPrivateKey(key).toString()
    expect(verifySigned(auth, ts => cancelPayload('r1', ts))).toBe(signer)
    expect(verifySigned(auth, ts => cancelPayload('r1', ts))).toBe(signer)
    // another request under the same signature, a flipped signature bit, a signature moved onto another key
    expect(() => verifySigned(auth, ts => cancelPayload('r2', ts))).toThrow(expect.objectContaining({ name: 'SignatureError' }))
    const flipped = new Uint8Array(auth.sig)
    flipped[0] ^= 1
    expect(() => verifySigned({ ...auth, sig: flipped }, ts => cancelPayload('r1', ts))).toThrow(expect.objectContaining({ name: 'SignatureError' }))
    const otherAuth = await signCancel(other, 'r1')
    expect(() => verifySigned({ ...otherAuth, sig: auth.sig }, ts => cancelPayload('r1', ts))).toThrow(expect.objectContaining({ name: 'SignatureError' }))
    // bytes shifted from the payload into the signature (the same bytes in a row) are another statement: refused
    // (the key's own check of the signature's length throws first)
    const payload = cancelPayload('r1', auth.ts)
    const shifted = new Uint8Array([payload[payload.length - 1], ...auth.sig])
    expect(() => verifySigned({ ...auth, sig: shifted }, () => payload.subarray(0, payload.length - 1))).toThrow()
  })
})
