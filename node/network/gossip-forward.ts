import { encodeRecipientTags, recipientTag, recipientTags } from '../../protocols/events/index.ts'

/** What of gossipsub this needs: its subscribers, and the method that relays a validated message. */
interface ForwardingPubsub {
  getSubscribers: (topic: string) => Array<{ toString: () => string }>
  forwardMessage: (msgIdStr: string, rawMsg: { signature?: Uint8Array }, propagationSource?: unknown, excludePeers?: Set<string>) => void
}

/** messages whose named recipients are remembered until they are relayed (they are relayed right after validation) */
const MAX_REMEMBERED = 4096

/**
 * Relays do not forward an event message to the peers its publisher sent it to itself.
 *
 * gossipsub floods a peer's own message to every subscriber it is connected to, and every receiver forwards it to
 * its mesh again. Where peers are connected to each other (a dflow network once membership has probed everyone)
 * that gives each peer the same message N-1 times: each copy decrypted, parsed and dropped, each forward encrypted
 * and written. So a publisher names its recipients in the message (`to` in an event batch, in the signed data,
 * so no relay can alter it), and a relay leaves them out when it forwards; it still forwards to everyone else (a
 * peer the publisher is not connected to still gets it). A publisher that lies only slows its own messages, and
 * a copy that was sent but lost is made good by anti-entropy, as any lost message.
 */
export class ForwardFilter {
  private readonly named = new Map<string, Set<number>>()
  private readonly tags = new Map<string, number>()
  private restore?: () => void
  /** forwards left out since start */
  skipped = 0

  constructor (private readonly pubsub: ForwardingPubsub, private readonly topic: string) {}

  start (): void {
    const pubsub = this.pubsub
    const original = pubsub.forwardMessage
    pubsub.forwardMessage = (msgIdStr, rawMsg, propagationSource, excludePeers) => {
      const sig = rawMsg.signature
      const key = sig === undefined ? undefined : keyOf(sig)
      const named = key === undefined ? undefined : this.named.get(key)
      if (named !== undefined) {
        this.named.delete(key as string)
        const exclude = new Set(excludePeers)
        for (const p of pubsub.getSubscribers(this.topic)) {
          const id = p.toString()
          if (!exclude.has(id) && named.has(this.tagOf(id))) { exclude.add(id); this.skipped++ }
        }
        excludePeers = exclude
      }
      original.call(pubsub, msgIdStr, rawMsg, propagationSource, excludePeers)
    }
    this.restore = () => { pubsub.forwardMessage = original }
  }

  stop (): void {
    this.restore?.()
    this.restore = undefined
    this.named.clear()
  }

  /** The recipients to name in a message this peer publishes now: its subscribers on the topic. */
  recipients (): Uint8Array | undefined {
    return encodeRecipientTags(this.pubsub.getSubscribers(this.topic).map(p => this.tagOf(p.toString())))
  }

  /** A validated message named these recipients: its relay, right after, leaves them out. */
  remember (signature: Uint8Array, to: Uint8Array): void {
    this.named.set(keyOf(signature), recipientTags(to))
    if (this.named.size > MAX_REMEMBERED) this.named.delete(this.named.keys().next().value as string)
  }

  private tagOf (peer: string): number {
    let t = this.tags.get(peer)
    if (t === undefined) {
      t = recipientTag(peer)
      if (this.tags.size > 10_000) this.tags.clear()
      this.tags.set(peer, t)
    }
    return t
  }
}

/** the key gossipsub's fast duplicate check uses too (node/network/libp2p.ts): the signature */
function keyOf (signature: Uint8Array): string {
  return Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64')
}
