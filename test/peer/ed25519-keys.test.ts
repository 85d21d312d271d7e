import { describe, expect, it } from 'vitest'
import { generateKeyPair, privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { installEd25519KeyCache } from '../../node/network/ed25519-keys.ts'

describe('cached Ed25519 KeyObjects', () => {
  it('sign and verify exactly as @libp2p/crypto does', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const msg = new TextEncoder().encode('output ready')
    const before = await key.sign(msg)
    installEd25519KeyCache()
    // Ed25519 signatures are deterministic: the cached private key signs to the same bytes
    const after = await key.sign(msg)
    expect(Buffer.from(after).equals(Buffer.from(before))).toBe(true)
    // a copy of the key (a new instance, as gossipsub makes per message) verifies through the cache
    const copy = publicKeyFromRaw(key.publicKey.raw)
    for (let i = 0; i < 3; i++) expect(await copy.verify(msg, after)).toBe(true)
    expect(await copy.verify(new TextEncoder().encode('output readY'), after)).toBe(false)
    expect(await other.publicKey.verify(msg, after)).toBe(false)
    const forged = after.slice(); forged[5] ^= 1
    expect(await copy.verify(msg, forged)).toBe(false)
    expect(() => copy.verify(msg, after.subarray(0, 10))).toThrow(TypeError)
    // a key rebuilt from its raw bytes signs the same way as the original instance
    const rebuilt = privateKeyFromRaw(key.raw)
    expect(Buffer.from(await rebuilt.sign(msg)).equals(Buffer.from(before))).toBe(true)
  })
})
