/** Settings, events and the HTTP view of the probe membership (membership.ts). */
/** a greeting is not a liveness judgment: it may take its time on a busy machine */
export const GREET_TIMEOUT_MS = 5000

/**
 * Members a peer keeps a direct connection to (fewer when the network is smaller): the ring neighbours alone
 * leave it hearing gossip through two links, and the testnet counts a peer as formed at this many.
 */
export const MIN_MEMBER_LINKS = 4

export interface MembershipInit {
  /** the probe period while there is news to spread, a suspect, or a peer not yet a member @default 1000 */
  probeIntervalMs: number
  /**
   * the probe period at rest (nothing to spread or decide): half the probe messages of a settled network. Capped
   * so that a probe period, the direct and indirect timeouts and a suspicion time of at least `probeIntervalMs`
   * still fit in `failureTimeoutMs`. @default 2 × probeIntervalMs (2000)
   */
  restIntervalMs?: number
  /** a failed peer is presumed dead within about this long @default 5000 */
  failureTimeoutMs: number
  /** peers asked to probe a silent peer before it is suspected @default 3 */
  indirectProbes?: number
}

export interface MembershipEvents {
  'membership:peer-dead': CustomEvent<string>
  'membership:peer-alive': CustomEvent<string>
}

export interface MembershipView {
  self: string
  incarnation: number
  /** local health multiplier minus one (0 = healthy): how much this peer stretches its probe timeouts */
  health: number
  /** how much its probe timeouts, suspicion time and period stretch now (health, or the measured round trip) */
  stretch: number
  /** whether the probe period is the busy one now (news to spread, a suspect, a stranger), and how much news waits */
  busy: boolean
  news: number
  /** `since`: epoch ms this peer's view of the member took its state (a bench reads detection times from it, so it need not poll fast) */
  members: Array<{ peerId: string, state: string, incarnation: number, version: number, since: number }>
}

