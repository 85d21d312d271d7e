import { MAX_ADDR_LENGTH, MAX_MEMBER_ADDRS, MAX_SUSPICION_AGE_MS, MAX_UPDATES, type MemberState, type MemberUpdate } from '../../protocols/probe/index.ts'

export interface MemberRecord {
  inc: number
  ver: number
  state: MemberState
  /** epoch ms this peer was last known alive (now, while it is) */
  aliveAt: number
  /**
   * epoch ms the current state began here; for a suspect, when the suspicion began where it was first raised
   * (the news carries its age), so every peer's suspicion ends at about the same time, however late it heard
   */
  since: number
}

/** What an accepted update changed about a peer. */
export interface MemberChange {
  peer: string
  /** undefined: a peer not known before */
  from: MemberState | undefined
  to: MemberState
  /** a new incarnation (the process restarted): its predecessor is gone */
  restarted: boolean
}

/**
 * SWIM's membership list and its update rules. (inc, ver) orders what is said about one peer: inc is the
 * peer's process incarnation, ver is bumped by the peer itself to refute a suspicion. At equal (inc, ver),
 * dead beats suspect beats alive, except that first-hand contact (the peer answered us) makes it alive here.
 * Accepted updates are queued as news and piggybacked on a few probes each, so they spread in O(log N) rounds.
 */
export class MemberTable {
  private readonly members = new Map<string, MemberRecord>()
  private readonly queue = new Map<string, { up: MemberUpdate, left: number }>()
  /** peers already sent the whole member list (on the first message to each) */
  private readonly synced = new Set<string>()
  /** where members listen (multiaddrs without /p2p): from identify, or from the news that introduced them */
  private readonly addrs = new Map<string, string[]>()
  /** our own refutation counter */
  ver = 0

  constructor (readonly self: string, readonly inc: number, private readonly now: () => number = Date.now) {}

  get (peer: string): MemberRecord | undefined { return this.members.get(peer) }

  entries (): IterableIterator<[string, MemberRecord]> { return this.members.entries() }

  get size (): number { return this.members.size }

  /** whether some news still waits to be piggybacked */
  get hasNews (): boolean { return this.queue.size > 0 }

  /** how many pieces of news wait to be piggybacked */
  get newsCount (): number { return this.queue.size }

  /** Where `peer` listens, when known. */
  addrsOf (peer: string): string[] | undefined { return this.addrs.get(peer) }

  /** Records where `peer` listens (the peer's own identify is the best source: it replaces what news said). */
  setAddrs (peer: string, addrs: string[]): void {
    const picked = pickAddrs(addrs)
    if (peer !== this.self && picked.length > 0) this.addrs.set(peer, picked)
  }

  /** Applies one update; returns what changed, or undefined. `firstHand`: the peer itself just said it. */
  apply (u: MemberUpdate, firstHand = false): MemberChange | undefined {
    const change = this.applyState(u, firstHand)
    // addresses from news: for a member we have none for, or for its new incarnation (it may listen elsewhere now)
    if (u.addrs !== undefined && u.state === 'alive' && (!this.addrs.has(u.peer) || change?.restarted === true)) this.setAddrs(u.peer, u.addrs)
    return change
  }

  private applyState (u: MemberUpdate, firstHand: boolean): MemberChange | undefined {
    if (u.peer === this.self) {
      // someone suspects (or buried) this very process: refute with a higher version
      if (u.state !== 'alive' && u.inc === this.inc && u.ver >= this.ver) {
        this.ver = u.ver + 1
        this.enqueue({ peer: this.self, inc: this.inc, ver: this.ver, state: 'alive' })
      }
      return undefined
    }
    const m = this.members.get(u.peer)
    const now = this.now()
    if (m === undefined) {
      if (u.state !== 'alive') return undefined
      this.members.set(u.peer, { inc: u.inc, ver: u.ver, state: 'alive', aliveAt: now, since: now })
      this.enqueue(u)
      return { peer: u.peer, from: undefined, to: 'alive', restarted: false }
    }
    if (u.inc < m.inc) return undefined
    const from = m.state
    if (u.inc > m.inc) {
      this.synced.delete(u.peer)
      Object.assign(m, { inc: u.inc, ver: u.ver, state: u.state, since: sinceOf(u, now) })
      if (u.state === 'alive') m.aliveAt = now
      this.enqueue(u)
      return { peer: u.peer, from, to: u.state, restarted: true }
    }
    let accept = false
    if (u.state === 'alive') accept = u.ver > m.ver || (firstHand && from !== 'alive')
    else if (u.state === 'suspect') accept = u.ver > m.ver || (u.ver === m.ver && from === 'alive')
    else accept = u.ver > m.ver || (u.ver === m.ver && from !== 'dead')
    if (firstHand && u.state === 'alive') m.aliveAt = now
    if (!accept) return undefined
    if (from === 'alive' && u.state !== 'alive') m.aliveAt = now
    const sameVer = u.ver === m.ver
    m.ver = Math.max(m.ver, u.ver)
    if (from !== u.state || u.state === 'suspect') m.since = sinceOf(u, now)
    m.state = u.state
    // a first-hand "alive" at a version others already buried cannot overrule them: only the peer's refutation can
    if (!(u.state === 'alive' && sameVer)) this.enqueue(u)
    return from === u.state ? undefined : { peer: u.peer, from, to: u.state, restarted: false }
  }

  /** What this peer says about itself. */
  own (): { inc: number, ver: number } { return { inc: this.inc, ver: this.ver } }

  /**
   * Queues an update to piggyback on the next few messages (3·log2 N of them). Not memberlist's 4·⌈log10 N⌉
   * (8 at 32 peers): it would cut the news 32 peers send for a minute after they meet, but deaths then failed
   * to reach some peers within 30 s (tried in session 5).
   */
  enqueue (up: MemberUpdate): void {
    const left = 3 * Math.ceil(Math.log2(this.members.size + 2))
    // addresses are attached when sent (ours may be better than the sender's by then)
    this.queue.set(up.peer, { up: { peer: up.peer, inc: up.inc, ver: up.ver, state: up.state }, left })
  }

  /** An update as sent: `alive` ones carry the peer's addresses when known, `suspect` ones the suspicion's age. */
  private withAddrs (u: MemberUpdate): MemberUpdate {
    if (u.state === 'suspect') {
      const m = this.members.get(u.peer)
      // the age of the suspicion as this peer knows it (it may have been raised elsewhere, earlier)
      return m !== undefined && m.state === 'suspect' && m.inc === u.inc && m.ver === u.ver ? { ...u, age: Math.min(MAX_SUSPICION_AGE_MS, Math.max(0, Math.round(this.now() - m.since))) } : u
    }
    const addrs = u.state === 'alive' ? this.addrs.get(u.peer) : undefined
    return addrs === undefined ? u : { ...u, addrs }
  }

  /**
   * Up to `max` queued updates, the least-sent first; each one sent counts down. The first message to a peer
   * also carries the live members (as many as fit): a joiner learns the network from its first contact
   * instead of one piggybacked update at a time. As many as a message holds by default: every piece of news is
   * sent the same number of times however it is batched, so bigger batches cost no more bytes, and they empty
   * the queue in fewer messages: with 8 a message, the joins of a 32-peer network (32 x 18 sends, 8 a message, a
   * few messages a second) kept a peer at its busy probe pace, a ping and an ack each way a second, for about
   * 20 s after it formed, by count.
   */
  news (to?: string, max = MAX_UPDATES): MemberUpdate[] {
    const picked = this.queue.size === 0 ? [] : [...this.queue.values()].sort((a, b) => b.left - a.left).slice(0, max)
    for (const item of picked) {
      if (--item.left <= 0) this.queue.delete(item.up.peer)
    }
    const out = picked.map(i => this.withAddrs(i.up))
    if (to !== undefined && !this.synced.has(to) && this.members.has(to)) {
      this.synced.add(to)
      const listed = new Set(out.map(u => u.peer))
      for (const [peer, m] of this.members) {
        if (out.length >= MAX_UPDATES) break
        if (m.state === 'alive' && peer !== to && !listed.has(peer)) out.push(this.withAddrs({ peer, inc: m.inc, ver: m.ver, state: 'alive' }))
      }
    }
    return out
  }

  /** Forgets a member entirely (not used for deaths: the dead are remembered so their claims stay void). */
  delete (peer: string): void {
    this.synced.delete(peer)
    this.addrs.delete(peer)
    this.members.delete(peer)
    this.queue.delete(peer)
  }
}

/** When the state an update announces began, by our clock: a suspicion's age counts back from now. */
function sinceOf (u: MemberUpdate, now: number): number {
  return u.state === 'suspect' && u.age !== undefined ? now - Math.min(u.age, MAX_SUSPICION_AGE_MS) : now
}

const LOOPBACK = /^\/(ip4\/127\.|ip6\/::1\/)/

/**
 * Up to MAX_MEMBER_ADDRS addresses worth telling others, /p2p stripped (the update names the peer): routable
 * ones before loopback (a peer on 0.0.0.0 lists 127.0.0.1 too, which only its own machine can dial).
 */
export function pickAddrs (addrs: string[]): string[] {
  const plain = addrs.map(a => a.replace(/\/p2p\/[^/]+$/, '')).filter(a => a.startsWith('/') && a.length <= MAX_ADDR_LENGTH && !a.includes('/p2p'))
  const unique = [...new Set(plain)]
  return [...unique.filter(a => !LOOPBACK.test(a)), ...unique.filter(a => LOOPBACK.test(a))].slice(0, MAX_MEMBER_ADDRS)
}
