/**
 * `/dflow/probe/1.0.0`: length-prefixed dag-cbor messages on one long-lived stream per pair of peers (opened
 * by the prober, reopened when it ends); every message has a `seq` its answer echoes, so probes and answers
 * may interleave.
 * - `ping`: the sender's own incarnation and version, plus membership news; answered by `ack` (the receiver's own),
 *   unless `quiet` (a one-way heartbeat: peers that do not know the flag answer it, which does no harm).
 * - `req`: "ping `target` for me" (SWIM's indirect probe); answered by the target's `ack` or by `nack`.
 * Every message carries `up`, piggybacked membership updates, so news spreads with the probes.
 */
export type MemberState = 'alive' | 'suspect' | 'dead'

/** What one peer says about another (or itself). (inc, ver) orders updates about one peer. */
export interface MemberUpdate {
  peer: string
  /** the peer's process incarnation (start time, ms) */
  inc: number
  /** bumped by the peer itself to refute a suspicion of this incarnation */
  ver: number
  state: MemberState
  /**
   * Where the peer listens (multiaddrs without /p2p), on `alive` news when the sender knows them: SWIM's member
   * list carries addresses, so a member heard of can be probed without a DHT lookup for it (when 32 peers
   * started at once, those lookups failed or took seconds, and the probes with them)
   */
  addrs?: string[]
  /**
   * On `suspect` news: how long ago (ms) the suspicion began, as the sender knows it. A peer that hears it late
   * ends it when the first suspecter does, instead of a whole suspicion time after hearing: spreading a suspicion
   * to 31 peers took 1.1-1.4 s on a loaded machine, and the last peer's own timer added all of it to detection.
   */
  age?: number
}

export type ProbeMessage =
  /** `quiet`: a heartbeat that wants no answer (the receiver only learns the sender is alive, and its news) */
  | { t: 'ping', seq: number, inc: number, ver: number, up: MemberUpdate[], quiet?: boolean }
  | { t: 'req', seq: number, target: string, timeoutMs: number, up: MemberUpdate[] }

export type ProbeAnswer =
  /** `of` answered (directly, or through the intermediary) with its incarnation and version */
  | { t: 'ack', seq: number, of: string, inc: number, ver: number, up: MemberUpdate[] }
  | { t: 'nack', seq: number, of: string, up: MemberUpdate[] }

/** What the protocol serves from: the membership. */
export interface ProbeTarget {
  /** this peer's own incarnation and version */
  own: () => { inc: number, ver: number }
  /** where `peer` listens, when known (multiaddrs without /p2p) */
  addrs: (peer: string) => string[] | undefined
  /** news to piggyback on a message to `to` */
  news: (to: string) => MemberUpdate[]
  /** the round trip of an answered probe, ms (not counting a dial) */
  rtt?: (ms: number) => void
  /** `from` (authenticated by the connection) said this; `inc`/`ver` are its own when it is a ping or a direct ack */
  heard: (from: string, up: MemberUpdate[], own?: { inc: number, ver: number }) => void
}

export { PROBE_PROTOCOL, MAX_UPDATES, MAX_MEMBER_ADDRS, MAX_ADDR_LENGTH, MAX_SUSPICION_AGE_MS } from './constants.ts'
export { ProbeProtocol, ProbeMessageError, checkProbeMessage, checkProbeAnswer } from './probe.ts'
