/** One testnet size in `npm run bench:scale`. Keys are the report's contract (docs/benchmarks/scale.json). */
export interface ScaleRow {
  peers: number
  /** wall time of `dflow testnet up --peers N`, start-up included, ms; null when it did not form */
  formationMs: number | null
  formationError?: string
  /** utime+stime per peer over the idle window, as % of one core: mean and max over peers */
  idleCpuPct: { mean: number, max: number } | null
  /** main-thread wake-ups (voluntary context switches) per peer per second over the idle window: mean and max */
  idleWakeupsPerSec?: { mean: number, max: number } | null
  /** peers whose membership probed at its busy pace (news, suspects, strangers) at the start and the end of the window */
  idleBusyPeers?: { start: number, end: number }
  /** libp2p bytes sent per peer per second over the idle window: mean and max */
  idleBytesPerSec: { mean: number, max: number } | null
  /** idle bytes sent per peer per second, by protocol (mean over peers) */
  idleByProtocol: Record<string, number>
  /** VmRSS per peer at the start of the idle window, MiB: mean and max */
  rssMiB: { mean: number, max: number } | null
  /** gossip events per request (small workflow), summed over peers */
  eventsPerRequest: { published: number, received: number } | null
  /** client-side latency of the small workflow, ms */
  smallP50Ms: number | null
  smallRequests: number
  /** the fan workflow, on the sizes it ran on */
  fan?: { steps: number, ms: number, ok: boolean, peersUsed: number, error?: string }
  /**
   * ms until every other peer's membership holds a peer dead: one frozen by SIGSTOP (its TCP connections
   * linger, as in a partition) and one killed by SIGKILL; null when not within 30 s
   */
  detectMs?: { stopped: number | null, killed: number | null }
  /** 1-minute load average when the idle window ended (the machine is shared) */
  loadAvg: number
}

export interface ScaleResults {
  machine: string
  date: string
  commit: string
  idleWaitMs: number
  idleWindowMs: number
  rows: ScaleRow[]
}

/** The targets of issue 15. */
export const SCALE_TARGETS = {
  formationMs: { peers: 32, max: 45_000 },
  idleCpuPct: 0.5,
  idleBytesPerSec: 2048,
  rssMiB: 110,
  detectMs: 5000,
  fanSteps: 100
} as const
