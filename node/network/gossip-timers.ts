/**
 * gossipsub runs two 1 s timers of its own: the heartbeat (a setTimeout re-armed after each run) and the peer
 * score's refresh (`setInterval(background, decayInterval)`: decay of the counters, gc of delivery records).
 * Started at different moments, they wake an idle peer twice a second where once would do; on this VM every
 * wake-up (epoll, timers, syscall entry) is a visible share of a resting peer's CPU (docs/benchmarks/scale.md).
 *
 * When the heartbeat and the decay interval are equal, the score's refresh runs at the end of each heartbeat
 * instead of on its own timer: the same work, once per the same interval (decay factors are per decayInterval,
 * and a heartbeat that is skipped or late delays a decay by as much, which gossipsub already allows: its own
 * heartbeat reads scores cached up to a heartbeat old). Uses only public members of the implementation and
 * changes nothing (answers false) when they are not what this expects, or when the intervals differ.
 */
interface ScoreLike {
  start: () => void
  background: () => void
  params?: { decayInterval?: number }
}

interface GossipLike {
  score?: ScoreLike
  heartbeat?: () => Promise<void>
}

export function foldScoreIntoHeartbeat (pubsub: unknown, heartbeatMs: number): boolean {
  const gs = pubsub as GossipLike | undefined
  const score = gs?.score
  if (gs === undefined || score === undefined || typeof score.start !== 'function' || typeof score.background !== 'function' || typeof gs.heartbeat !== 'function') return false
  if (score.params?.decayInterval !== heartbeatMs) return false
  const heartbeat = gs.heartbeat.bind(gs)
  const decayMs = heartbeatMs
  let refreshedAt = Date.now()
  // no interval of its own: stop() clears an undefined handle, which Node accepts
  score.start = () => {}
  gs.heartbeat = async () => {
    try {
      await heartbeat()
    } finally {
      // one refresh per decay interval gone by: at rest the heartbeat is slower (restHeartbeatWhenQuiet), and the
      // scores must still decay per wall-clock time, as gossipsub's own timer did (a few cheap calls, no wake-up)
      const now = Date.now()
      const due = Math.min(MAX_CATCH_UP, Math.max(1, Math.round((now - refreshedAt) / decayMs)))
      refreshedAt = now
      for (let i = 0; i < due; i++) score.background()
    }
  }
  return true
}

/** score refreshes at most run after one heartbeat (a process frozen for minutes does not loop for long) */
const MAX_CATCH_UP = 10

interface RestLike {
  opts?: { heartbeatInterval?: number }
  status?: { code?: number, heartbeatTimeout?: ReturnType<typeof setTimeout> }
  runHeartbeat?: () => void
  heartbeat?: () => Promise<void>
  publish?: (...args: unknown[]) => Promise<unknown>
  addEventListener?: (type: string, fn: () => void) => void
}

/** libp2p's own events: connections opened and closed */
interface EventsLike {
  addEventListener: (type: 'peer:connect' | 'peer:disconnect', fn: () => void) => void
}

export interface RestHeartbeatInit {
  /** the heartbeat while anything happens (gossipsub's own interval) */
  fastMs: number
  /** the heartbeat at rest */
  restMs: number
  /** how long nothing must happen before the heartbeat slows down */
  quietMs: number
}

export interface RestHeartbeat {
  /** whether the heartbeat runs at the rest interval now */
  readonly resting: boolean
  /** something happened: back to the fast heartbeat, the next one within fastMs */
  wake: () => void
}

/** gossipsub's status code while started (GossipStatusCode.started) */
const STARTED = 0

/**
 * A slower gossipsub heartbeat at rest, the fast one as soon as anything happens. At rest a dflow network
 * publishes nothing: the heartbeat finds full meshes, no message to gossip about and nothing to expire, and
 * wakes every peer once a second for it (on this VM each wake-up is a visible share of an idle peer's CPU).
 * Anything the heartbeat would act on comes with an event: a message published or received, a subscription
 * change, a graft or prune (the heartbeat's own repairs among them), a connection opened or closed. Each one
 * brings the fast heartbeat back at once (its next run within `fastMs`: a mesh peer lost is replaced as fast
 * as before), and it stays fast until `quietMs` have passed without any, so that the gossip about the last
 * messages (IHAVE over `mcacheGossip` heartbeats) runs at its usual pace. gossipsub reads its interval anew
 * every time it re-arms its heartbeat, so this only sets it. Uses only public members of the implementation;
 * changes nothing (undefined) when they are not what this expects.
 */
export function restHeartbeatWhenQuiet (pubsub: unknown, events: EventsLike, init: RestHeartbeatInit): RestHeartbeat | undefined {
  const gs = pubsub as RestLike | undefined
  const opts = gs?.opts
  if (gs === undefined || opts === undefined || opts.heartbeatInterval !== init.fastMs || typeof gs.heartbeat !== 'function' ||
    typeof gs.runHeartbeat !== 'function' || typeof gs.publish !== 'function' || typeof gs.addEventListener !== 'function' || init.restMs <= init.fastMs) return undefined
  const heartbeat = gs.heartbeat.bind(gs)
  const publish = gs.publish.bind(gs)
  const run = gs.runHeartbeat
  let lastActivity = Date.now()
  let running = false
  const wake = (): void => {
    lastActivity = Date.now()
    if (opts.heartbeatInterval === init.fastMs) return
    opts.heartbeatInterval = init.fastMs
    // a heartbeat under way re-arms itself with the fast interval when it ends; else the one armed at the rest
    // interval is replaced by one within the fast interval
    const status = gs.status
    if (running || status?.code !== STARTED || status.heartbeatTimeout === undefined) return
    clearTimeout(status.heartbeatTimeout)
    status.heartbeatTimeout = setTimeout(run, init.fastMs)
  }
  gs.heartbeat = async () => {
    running = true
    try {
      await heartbeat()
    } finally {
      running = false
      if (Date.now() - lastActivity >= init.quietMs) opts.heartbeatInterval = init.restMs
    }
  }
  gs.publish = async (...args: unknown[]) => {
    wake()
    return await publish(...args)
  }
  for (const type of ['gossipsub:message', 'subscription-change', 'gossipsub:graft', 'gossipsub:prune']) gs.addEventListener(type, wake)
  events.addEventListener('peer:connect', wake)
  events.addEventListener('peer:disconnect', wake)
  return {
    get resting () { return opts.heartbeatInterval === init.restMs },
    wake
  }
}
