import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys'

/**
 * Ed25519 signing and verification with the KeyObjects kept.
 *
 * @libp2p/crypto builds a KeyObject from a JWK on every sign and every verify. gossipsub verifies every event
 * a peer receives and signs every one it publishes, and a profile of a 4-peer fan of 100 spent about as much
 * time parsing keys (createPublicKey from JWK) as verifying signatures. The keys of a network's peers are
 * few, so their KeyObjects are cached by raw public key (bounded), and a private key's on its instance.
 * What is computed is unchanged: the same `crypto.verify` / `crypto.sign` on the same key.
 */
const PUBLIC_CACHE_MAX = 4096
const publicKeys = new Map<string, KeyObject>()
const privateKeys = new WeakMap<object, KeyObject>()
let installed = false

type Bytes = Uint8Array | { subarray: () => Uint8Array }
const asBytes = (m: Bytes): Uint8Array => m instanceof Uint8Array ? m : m.subarray()
const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')

function publicKeyObject (raw: Uint8Array): KeyObject {
  const id = b64url(raw)
  let key = publicKeys.get(id)
  if (key === undefined) {
    key = createPublicKey({ format: 'jwk', key: { crv: 'Ed25519', x: id, kty: 'OKP' } })
    if (publicKeys.size >= PUBLIC_CACHE_MAX) publicKeys.delete(publicKeys.keys().next().value as string)
    publicKeys.set(id, key)
  }
  return key
}

export function installEd25519KeyCache (): void {
  if (installed) return
  installed = true
  const pub = Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(32).fill(1))) as { verify?: unknown }
  // only the classes are wanted: keys made of fixed bytes reach their prototypes
  const priv = Object.getPrototypeOf(privateKeyFromRaw(new Uint8Array(64))) as { sign?: unknown }
  if (typeof pub.verify !== 'function' || typeof priv.sign !== 'function') return
  pub.verify = function (this: { raw: Uint8Array }, data: Bytes, sig: Uint8Array, options?: { signal?: AbortSignal }): boolean {
    options?.signal?.throwIfAborted()
    if (!(sig instanceof Uint8Array) || sig.byteLength !== 64) throw new TypeError('"sig" must be 64 bytes in length.')
    return verify(null, asBytes(data), publicKeyObject(this.raw), sig)
  }
  priv.sign = function (this: { raw: Uint8Array }, message: Bytes, options?: { signal?: AbortSignal }): Uint8Array {
    options?.signal?.throwIfAborted()
    let key = privateKeys.get(this)
    if (key === undefined) {
      key = createPrivateKey({ format: 'jwk', key: { crv: 'Ed25519', d: b64url(this.raw.subarray(0, 32)), x: b64url(this.raw.subarray(32)), kty: 'OKP' } })
      privateKeys.set(this, key)
    }
    return sign(null, asBytes(message), key)
  }
}
