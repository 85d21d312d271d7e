import { TypedEventEmitter } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { PROBE_PROTOCOL, ProbeProtocol, type MemberUpdate, type ProbeTarget } from '../../protocols/probe/index.ts'
import { MemberTable, type MemberChange } from './member-table.ts'
import { ProbePace } from './probe-pace.ts'
import type { Membership } from './types.ts'
import type { DflowLibp2p } from '../network/libp2p.ts'
import { GREET_TIMEOUT_MS, MIN_MEMBER_LINKS, type MembershipEvents, type MembershipInit, type MembershipView } from './membership-types.ts'
import type { IdentifyResult, Logger, PeerId, PeerUpdate } from '@libp2p/interface'

export type { MembershipEvents, MembershipInit, MembershipView } from './membership-types.ts'

/** What the membership sends probes with: the probe protocol, or a simulated network in tests. */
export type ProbeSender = Pick<ProbeProtocol, 'start' | 'stop' | 'ping' | 'beat' | 'pingThrough'>

/** how fast a slow round trip is forgotten (see stretch) */
const RTT_HALF_LIFE_MS = 2000

/**
 * Who is alive, SWIM-style, at a cost that grows with N, not N²: each period this peer probes one member, its
 * successor on a ring of the live members in peer-id order, so every member is probed by its predecessor
 * once a period (a frozen peer waits at most one period for its probe, where random targets made the wait
 * exponential with mean = period), and a peer keeps probe connections to two members instead of meeting all
 * of them over N periods (a connection costs about 1.3 MiB and a noise handshake; 32 peers meeting each other
 * at once starved a 2-core machine). A predecessor heard from neither by its pings nor by answers for three
 * periods is probed from this side (views of the ring may differ while news spreads). A silent member is
 * probed through `indirectProbes` others, then suspected; a suspect that does not refute within the suspicion
 * time is dead. News (joins, suspicions, deaths, refutations, new incarnations) rides on the probes and, while
 * there is any, on one extra ping a period to a random member this peer is already connected to; suspicions and
 * deaths this peer finds itself it also tells every member at once. A closed connection triggers an immediate
 * probe, so a killed peer is dead within a round trip. The period is `restIntervalMs` (2 s) in a settled network
 * and `probeIntervalMs` (1 s) while there is news, a suspect or a stranger (probe-pace.ts); the suspicion time is
 * what is left of `failureTimeoutMs` after a rest period and both timeouts, so detection stays within it. Members are the peers that speak the probe protocol
 * (learned from identify or from their own probes), so only dflow peers count.
 */
export class ProbeMembership extends TypedEventEmitter<MembershipEvents> implements Membership {
  readonly incarnation = Date.now()
  private readonly table: MemberTable
  private readonly probe: ProbeSender
  private readonly controller = new AbortController()
  private readonly inflight = new Set<string>()
  private readonly suspicions = new Map<string, NodeJS.Timeout>()
  /** dead members are re-probed now and then (a healed partition), backing off */
  private readonly deadRetry = new Map<string, { at: number, delay: number }>()
  /** when each member last spoke for itself (its ping, or its answer to ours) */
  private readonly heardAt = new Map<string, number>()
  private startedAt = 0
  private readonly pace: ProbePace
  private started = false
  private readonly restMs: number
  /** how late a predecessor's heartbeat may be before it is checked (its timer's and the delivery's jitter) */
  private readonly graceMs: number
  private watchTimer?: NodeJS.Timeout
  /** when the watch last checked a member itself (a check in flight is not repeated) */
  private readonly watchedAt = new Map<string, number>()
  private readonly directMs: number
  private readonly indirectMs: number
  private readonly suspicionMs: number
  /**
   * Local health (Lifeguard's multiplier), 0-8: rises when this peer's own probes go unanswered even by the
   * intermediaries, or when it must refute a suspicion of itself (signs that it is the slow one), falls with
   * every answered probe. Timeouts, the suspicion time and the probe period stretch by 1 + health, so an
   * overloaded peer neither accuses the others nor adds to the load.
   */
  private health = 0
  /** parsed peer ids: parsing one (base58, multihash, key) on every probe was a visible share of an idle peer's CPU */
  private readonly ids = new Map<string, PeerId>()

  /** `sender`: what probes go out with (tests pass a simulated network); the probe protocol over `libp2p` by default */
  constructor (private readonly self: string, private readonly libp2p: DflowLibp2p, private readonly init: MembershipInit, private readonly log: Logger, sender?: (target: ProbeTarget) => ProbeSender) {
    super()
    const p = init.probeIntervalMs
    this.table = new MemberTable(self, this.incarnation)
    const target: ProbeTarget = {
      own: () => this.table.own(),
      addrs: peer => this.table.addrsOf(peer),
      rtt: ms => { this.sampleRtt(ms) },
      news: to => this.table.news(to),
      heard: (from, up, own) => { this.heard(from, up, own) }
    }
    this.probe = sender?.(target) ?? new ProbeProtocol(libp2p, target, log)
    this.directMs = Math.max(100, Math.min(p / 2, 1000))
    this.indirectMs = Math.max(200, Math.min(p, 2000))
    // detection <= a rest period and its grace (the watcher waits that long for a heartbeat) + direct + indirect +
    // suspicion + what timers and deliveries run late (6% of failureTimeout kept for it: with nothing kept, the
    // bench measured 4.9 s of the 5 at 4 peers): the rest period is capped so that a suspicion time of at least one
    // busy period fits (defaults: 2 + 0.2 + 0.5 + 1 + 1 = 4.7 s, 0.3 s kept)
    const budget = init.failureTimeoutMs * 0.94
    const rest = Math.min(init.restIntervalMs ?? 2 * p, (budget - this.directMs - this.indirectMs - p) / 1.1)
    this.restMs = Math.max(p, rest)
    this.graceMs = this.restMs / 10
    this.suspicionMs = Math.max(p, budget - this.restMs - this.graceMs - this.directMs - this.indirectMs)
    this.pace = new ProbePace(p, this.restMs, () => { this.tick() })
  }

  private readonly onIdentify = (ev: CustomEvent<IdentifyResult>): void => {
    if (ev.detail.protocols.includes(PROBE_PROTOCOL)) this.table.setAddrs(ev.detail.peerId.toString(), ev.detail.listenAddrs.map(String))
    this.consider(ev.detail.peerId, ev.detail.protocols)
  }
  private readonly onUpdate = (ev: CustomEvent<PeerUpdate>): void => { this.consider(ev.detail.peer.id, ev.detail.peer.protocols) }
  /** connected peers not (yet) members, and when they were last greeted */
  private readonly strangers = new Map<string, number>()
  private readonly onConnect = (ev: CustomEvent<PeerId>): void => {
    const peer = ev.detail.toString()
    const m = this.table.get(peer)
    if (m !== undefined && m.state !== 'dead') return
    // identify may be slow or fail on a busy machine: greet now, and again from the probe loop until it answers
    this.strangers.set(peer, Date.now())
    void this.greet(ev.detail)
    this.schedule()
  }

  private readonly onDisconnect = (ev: CustomEvent<PeerId>): void => {
    const peer = ev.detail.toString()
    const m = this.table.get(peer)
    if (m !== undefined && m.state !== 'dead') void this.check(peer, true)
  }

  async start (): Promise<void> {
    await this.probe.start()
    this.started = true
    this.startedAt = Date.now()
    this.libp2p.addEventListener('peer:identify', this.onIdentify)
    this.libp2p.addEventListener('peer:update', this.onUpdate)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    // peers connected before the probe protocol was served here: greet them (they learn us from the ping)
    for (const conn of this.libp2p.getConnections()) this.onConnect(new CustomEvent('peer:connect', { detail: conn.remotePeer }))
    // members may have pinged us between the protocol's start and now (their news did not arm the loop: not started)
    this.schedule()
  }

  async stop (): Promise<void> {
    this.started = false
    this.controller.abort()
    this.pace.stop()
    clearTimeout(this.watchTimer)
    this.watchTimer = undefined
    for (const t of this.suspicions.values()) clearTimeout(t)
    this.suspicions.clear()
    this.libp2p.removeEventListener('peer:identify', this.onIdentify)
    this.libp2p.removeEventListener('peer:update', this.onUpdate)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    await this.probe.stop()
  }

  incarnationOf (peer: string): number | undefined {
    return peer === this.self ? this.incarnation : this.table.get(peer)?.inc
  }

  /** Now while the peer is alive; when it was last known alive once it is suspected or dead. */
  lastHeard (peer: string): number | undefined {
    if (peer === this.self) return Date.now()
    const m = this.table.get(peer)
    if (m === undefined) return undefined
    return m.state === 'alive' ? Date.now() : m.aliveAt
  }

  isLive (peer: string): boolean {
    if (peer === this.self) return true
    const m = this.table.get(peer)
    return m !== undefined && m.state !== 'dead'
  }

  live (): string[] {
    const out = [this.self]
    for (const [peer, m] of this.table.entries()) if (m.state !== 'dead') out.push(peer)
    return out.sort()
  }

  view (): MembershipView {
    return {
      self: this.self,
      incarnation: this.incarnation,
      health: this.health,
      stretch: Math.round(this.stretch() * 100) / 100,
      busy: this.busy(),
      news: this.table.newsCount,
      members: [...this.table.entries()].map(([peerId, m]) => ({ peerId, state: m.state, incarnation: m.inc, version: m.ver, since: m.since })).sort((a, b) => a.peerId.localeCompare(b.peerId))
    }
  }

  private consider (peerId: PeerId, protocols: string[]): void {
    if (!this.started || !protocols.includes(PROBE_PROTOCOL)) return
    const m = this.table.get(peerId.toString())
    if (m === undefined || m.state === 'dead') void this.greet(peerId)
  }

  /** A direct ping to a peer we may not know yet; it learns us from the ping, we learn it from the ack. */
  private async greet (peerId: PeerId): Promise<void> {
    const peer = peerId.toString()
    if (this.inflight.has(peer) || !this.started) return
    this.inflight.add(peer)
    // not a liveness judgment (a failed greeting suspects nobody), so it may take its time on a busy machine
    try { await this.probe.ping(peerId, GREET_TIMEOUT_MS, this.controller.signal) } finally { this.inflight.delete(peer) }
  }

  /** The parsed id of `peer`, parsed once (throws on a string that is not a peer id). */
  id (peer: string): PeerId {
    let id = this.ids.get(peer)
    if (id === undefined) {
      id = peerIdFromString(peer)
      // members are remembered for good (the dead too); strangers that never answer are few
      if (this.ids.size < 10_000) this.ids.set(peer, id)
    }
    return id
  }

  /**
   * How far timeouts, the suspicion time and the probe period stretch: by the local health, or by what probes
   * take now (3 x the slowest recent round trip, against the direct timeout), whichever is more. At rest a round
   * trip is a millisecond or two and this is 1 + health; when 32 peers start at once on 2 cores an answer takes
   * hundreds of ms to be scheduled on both sides, and fixed timeouts suspected live peers by the hundreds. The
   * peak halves every RTT_HALF_LIFE_MS: a smoothed average (Jacobson) decayed per sample, and as the stretch also
   * slows the probes, it kept timeouts long for minutes after the load was gone (failure detection 22 s).
   */
  private stretch (): number {
    const peak = this.rttPeak * Math.pow(0.5, (Date.now() - this.rttPeakAt) / RTT_HALF_LIFE_MS)
    return Math.max(1 + this.health, Math.min(9, 3 * peak / this.directMs))
  }

  private rttPeak = 0
  private rttPeakAt = 0
  private sampleRtt (ms: number): void {
    const now = Date.now()
    const decayed = this.rttPeak * Math.pow(0.5, (now - this.rttPeakAt) / RTT_HALF_LIFE_MS)
    if (ms >= decayed) { this.rttPeak = ms; this.rttPeakAt = now }
  }


  private heard (from: string, up: MemberUpdate[], own?: { inc: number, ver: number }): void {
    const ver = this.table.ver
    if (own !== undefined) {
      this.heardAt.set(from, Date.now())
      this.changed(this.table.apply({ peer: from, ...own, state: 'alive' }, true))
    }
    // a member heard of, not from, is not greeted: the news itself makes it a member here, and greeting every
    // newcomer made every peer connect to every other at once when a network starts
    for (const u of up) this.changed(this.table.apply(u))
    if (this.table.ver > ver) {
      // suspected ourselves: most likely we were too slow to answer
      this.health = Math.min(8, this.health + 1)
      this.tellEveryone()
    }
  }

  private changed (c: MemberChange | undefined): void {
    if (c === undefined) return
    this.log('member %s: %s -> %s%s', c.peer, c.from ?? 'unknown', c.to, c.restarted ? ' (new incarnation)' : '')
    const timer = this.suspicions.get(c.peer)
    if (timer !== undefined && c.to !== 'suspect') { clearTimeout(timer); this.suspicions.delete(c.peer) }
    if (c.to === 'suspect' && (timer === undefined || c.restarted)) {
      clearTimeout(timer)
      const m = this.table.get(c.peer)
      const at = { inc: m?.inc ?? 0, ver: m?.ver ?? 0 }
      // counted from when the suspicion began where it was raised (news carries its age), not from when we heard it
      const left = this.suspicionMs * this.stretch() - (Date.now() - (m?.since ?? Date.now()))
      // after the poll phase: a refutation already in the socket (a busy event loop) is read before the verdict
      const t = setTimeout(() => { setImmediate(() => { this.expire(c.peer, at) }) }, Math.max(0, left))
      this.suspicions.set(c.peer, t)
    }
    if (c.to === 'dead') {
      this.deadRetry.set(c.peer, { at: Date.now() + this.init.probeIntervalMs * 2, delay: this.init.probeIntervalMs * 2 })
    } else {
      this.deadRetry.delete(c.peer)
    }
    const wasLive = c.from !== undefined && c.from !== 'dead'
    const isLive = c.to !== 'dead'
    // a restart: the old process is gone (its claims and in-memory values with it), the new one is here
    if (c.restarted && wasLive) this.safeDispatchEvent('membership:peer-dead', { detail: c.peer })
    if (wasLive && !isLive) this.safeDispatchEvent('membership:peer-dead', { detail: c.peer })
    if (isLive && (!wasLive || c.restarted)) this.safeDispatchEvent('membership:peer-alive', { detail: c.peer })
    this.schedule()
  }

  /** A suspicion that was not refuted in time: dead. */
  private expire (peer: string, at: { inc: number, ver: number }): void {
    this.suspicions.delete(peer)
    const m = this.table.get(peer)
    if (m === undefined || m.state !== 'suspect' || m.inc !== at.inc || m.ver !== at.ver) return
    this.changed(this.table.apply({ peer, inc: m.inc, ver: m.ver, state: 'dead' }))
  }

  /** Probes a peer directly, then through others; suspects it (or, when its connection just closed, buries it). */
  private async check (peer: string, connectionLost = false): Promise<void> {
    if (this.inflight.has(peer) || !this.started) return
    this.inflight.add(peer)
    try {
      const id = this.id(peer)
      const signal = this.controller.signal
      const k = this.stretch()
      if (await this.probe.ping(id, this.directMs * k, signal) !== undefined) {
        this.health = Math.max(0, this.health - 1)
        return
      }
      const vias = this.pick(this.init.indirectProbes ?? 3, peer)
      const through = await Promise.all(vias.map(async v => this.probe.pingThrough(this.id(v), peer, this.indirectMs * k, signal)))
      if (through.includes('ack') || !this.started) return
      if (vias.length > 0 && through.every(t => t === 'none') && !connectionLost) {
        // nobody answered us at all: the trouble is more likely here than there
        this.health = Math.min(8, this.health + 1)
        return
      }
      const m = this.table.get(peer)
      if (m === undefined || m.state === 'dead') return
      // its connections closed and nobody reaches it: a crash, no need to wait out a suspicion
      const verdict = connectionLost && this.libp2p.getConnections(id).length === 0 ? 'dead' : 'suspect'
      if (m.state === 'suspect' && verdict === 'suspect') return
      this.log('%s %s: no answer within %d ms, through %d others: %s (health %d)', verdict === 'dead' ? 'burying' : 'suspecting', peer, this.directMs * k, vias.length, through.join(' '), this.health)
      this.changed(this.table.apply({ peer, inc: m.inc, ver: m.ver, state: verdict }))
      this.tellEveryone()
    } finally {
      this.inflight.delete(peer)
    }
  }

  /** News this peer found itself goes to every live member at once (the suspect too: it may refute). */
  private tellEveryone (): void {
    for (const peer of this.live()) {
      if (peer === this.self || this.inflight.has(peer)) continue
      void this.probe.ping(this.id(peer), this.indirectMs, this.controller.signal)
    }
  }

  /**
   * Up to k random live members other than `except`, those this peer is connected to first: asking one it must
   * dial first waits out the dial (up to PROBE_DIAL_TIMEOUT_MS), and the check waits for every answer, so on a
   * loaded machine one unconnected intermediary held a frozen peer's suspicion back by seconds.
   */
  private pick (k: number, except: string): string[] {
    const pool = this.live().filter(p => p !== this.self && p !== except)
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [pool[i], pool[j]] = [pool[j], pool[i]]
    }
    const connected = pool.filter(p => this.libp2p.getConnections(this.id(p)).length > 0)
    return [...connected, ...pool.filter(p => !connected.includes(p))].slice(0, k)
  }

  /**
   * The probe loop runs only while there is someone to probe, fast while there is news to spread (it rides on
   * the probes), a suspicion to confirm or refute, or a connected peer not yet a member; every call with such
   * news brings a pending rest round forward (probe-pace.ts).
   */
  private schedule (): void {
    if (!this.started) return
    const anyone = this.live().length > 1 || this.deadRetry.size > 0 || this.strangers.size > 0
    if (!anyone) return
    this.pace.arm(this.busy(), this.stretch())
    this.watch()
  }

  /** The member before this one on the ring: the one whose heartbeats this peer watches. */
  private predecessor (): string | undefined {
    return ringNeighbours(this.self, this.live().filter(p => p !== this.self)).predecessor
  }

  /** When this peer last had word from `peer` itself, or checked it (a member never heard from: since it was learned). */
  private lastWord (peer: string): number {
    const heard = this.heardAt.get(peer) ?? Math.max(this.startedAt, this.table.get(peer)?.since ?? 0)
    return Math.max(heard, this.watchedAt.get(peer) ?? 0)
  }

  /**
   * Watches the predecessor's heartbeats: at rest a peer only tells its successor it is alive (a `quiet` ping, no
   * answer), so it is the successor that notices the silence, after a rest period and its grace, and checks the
   * predecessor as a prober would (direct, then indirect, then suspicion). Half the messages of a ping and an
   * ack each way. One timer, re-armed lazily when it fires (a heartbeat that came in time just moves it on).
   */
  private watch (): void {
    if (this.watchTimer !== undefined || !this.started) return
    const pred = this.predecessor()
    if (pred === undefined) return
    const due = this.lastWord(pred) + this.restMs * this.stretch() + this.graceMs
    // looked at again within an unstretched rest period at most: a due stretched under load (up to 9x, ~18 s)
    // stayed armed after the load was gone, and a peer frozen then went unnoticed for seconds (8.1 s at 32, the
    // bench's freeze 10 s after the fan); at rest (stretch 1) the due is never further, and nothing wakes more
    const wait = Math.min(due - Date.now(), this.restMs + this.graceMs)
    this.watchTimer = setTimeout(() => {
      this.watchTimer = undefined
      if (!this.started) return
      const p = this.predecessor()
      if (p !== undefined && Date.now() >= this.lastWord(p) + this.restMs * this.stretch() + this.graceMs) {
        this.watchedAt.set(p, Date.now())
        void this.check(p)
      }
      this.watch()
    }, Math.max(0, wait))
    this.watchTimer.unref()
  }

  /**
   * Busy: news to spread, a suspicion to settle, a stranger, or a doubt about itself (health above 0: it falls only
   * with answered probes, and one-way heartbeats get no answers, so a peer that had a bad moment under load
   * kept its timeouts and its watch stretched for good; a 32-peer bench measured 9.3 s to detect a frozen peer
   * after a fan before full pings came back while health > 0).
   */
  private busy (): boolean {
    return this.table.hasNews || this.suspicions.size > 0 || this.strangers.size > 0 || this.health > 0
  }

  /**
   * Greets one live member it has no connection to, per period, while fewer than MIN_MEMBER_LINKS members are
   * connected. Members heard of are not greeted (that connected everyone to everyone when a network started),
   * and discovery stops looking itself up once a lookup finds no one new, so a peer that met its neighbourhood
   * early stayed on three links for good: a 6-peer chaos run in CI never formed in 87 s.
   */
  private keepLinks (live: string[]): void {
    const want = Math.min(MIN_MEMBER_LINKS, live.length)
    const linked = new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))
    const unlinked = live.filter(p => !linked.has(p))
    if (live.length - unlinked.length >= want) return
    const free = unlinked.filter(p => !this.inflight.has(p))
    if (free.length === 0) return
    const to = free[Math.floor(Math.random() * free.length)]
    this.log('%d of %d members linked: greeting %s', live.length - unlinked.length, want, to)
    void this.greet(this.id(to))
  }

  private tick (): void {
    if (!this.started) return
    const live = this.live().filter(p => p !== this.self)
    const now = Date.now()
    const { successor, predecessor } = ringNeighbours(this.self, live)
    // while there is news (it rides on the answers too) or a doubt, a full probe; at rest a one-way heartbeat,
    // and the successor watches for it (watch())
    if (successor !== undefined) {
      if (this.busy()) void this.check(successor)
      else void this.probe.beat(this.id(successor), this.directMs, this.controller.signal)
    }
    // news also goes to a random member this peer is connected to, so it spreads in O(log N) periods rather than
    // one hop of the ring a period; a settled network has none, and sends nothing more
    if (this.table.hasNews) {
      const near = live.filter(p => p !== successor && p !== predecessor && !this.inflight.has(p) && this.libp2p.getConnections(this.id(p)).length > 0)
      const to = near[Math.floor(Math.random() * near.length)]
      if (to !== undefined) void this.probe.ping(this.id(to), this.indirectMs, this.controller.signal)
    }
    // connected peers that never answered a greeting (not a dflow peer, or not started yet): retry now and then
    for (const [peer, at] of this.strangers) {
      const m = this.table.get(peer)
      const connected = this.libp2p.getConnections(this.id(peer)).length > 0
      if ((m !== undefined && m.state !== 'dead') || !connected || now - at > 60_000) { this.strangers.delete(peer); continue }
      if (now - at >= 2000 && !this.inflight.has(peer)) void this.greet(this.id(peer))
    }
    this.keepLinks(live)
    // dead members are retried, backing off to 10 s; a peer that finds everyone dead is probably the one cut
    // off, so it retries them every period to rejoin quickly once its link is back
    const isolated = live.length === 0
    for (const [peer, r] of this.deadRetry) {
      if (!isolated && r.at > now) continue
      r.delay = Math.min(r.delay * 2, 10_000)
      r.at = now + r.delay
      void this.greet(this.id(peer))
      if (!isolated) break
    }
    this.schedule()
  }
}

/** The members after and before `self` on the ring of live members in peer-id order (`others` sorted, without self). */
export function ringNeighbours (self: string, others: string[]): { successor?: string, predecessor?: string } {
  if (others.length === 0) return {}
  const after = others.find(p => p > self)
  const before = others.findLast(p => p < self)
  return { successor: after ?? others[0], predecessor: before ?? others[others.length - 1] }
}
