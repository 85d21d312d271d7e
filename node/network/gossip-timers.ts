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
  // no interval of its own: stop() clears an undefined handle, which Node accepts
  score.start = () => {}
  gs.heartbeat = async () => {
    try {
      await heartbeat()
    } finally {
      score.background()
    }
  }
  return true
}
