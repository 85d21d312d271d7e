import type { InstanceRunner, RunPhases } from './runner.ts'
import type { InstanceRecord, RequestState } from './request-state.ts'
import type { LoadedWorkflow } from './types.ts'
import type { RequestDone, RequestEvent, RequestStarted } from '../../protocols/events/index.ts'
import type { LongTimer } from '../util/long-timer.ts'

export interface LogLine { step: string, index: number | null, peer: string, line: string, ts: number }

/** One run of an instance on this peer: which claim it ran under and how it ended. */
export interface RunRecord {
  step: string
  index: number | null
  peer: string
  attempt: number
  incarnation: number
  firedAt: number
  outcome: 'running' | 'done' | 'failed' | 'aborted'
  /** where the run's time went on this peer (the runner's, filled in as it goes) */
  phases: RunPhases
}

/** Most log lines kept per request (the oldest go first). */
export const MAX_LOG_LINES = 2000

/** One request as this peer tracks it: its state once started, and this peer's part in it. */
export interface Tracked {
  state?: RequestState
  loaded?: LoadedWorkflow
  /** events that arrived before the request-started event or before the workflow was loaded */
  early: RequestEvent[]
  /** instances this peer won, by instance key */
  runners: Map<string, InstanceRunner>
  /** inputs waiting for the state to change */
  waiters: Set<() => void>
  conditionsInFlight: Set<string>
  /** instances an event may have changed since the last pass: only these are looked at */
  dirty: Set<InstanceRecord>
  /** claimable instances nobody won yet: placement looks at these (and only these) */
  unplaced: Set<InstanceRecord>
  /** a step finished, failed or was skipped: the request's outcome may have changed */
  outcomeDirty: boolean
  /** step name -> position in the workflow (placement walks instances in this order on every peer) */
  order: Map<string, number>
  /** the start this peer follows (set before its workflow is loaded) */
  startedBy?: RequestStarted
  loading?: boolean
  deadline?: LongTimer
  done?: RequestDone
  finishedAt?: number
  finishing?: boolean
  /** finished ok with instances unfinished here: anti-entropy follows it until they are done (settle.ts) */
  settling?: boolean
  /** before the finish: placement's next look; after it: the rewrite of the record for late results */
  timer?: NodeJS.Timeout
  /**
   * claims of this peer not published yet (see Dispatcher.claim): instances it runs itself whose data is all
   * here already, so nobody needs to push to them; their step-done names the claim, and the claim itself goes
   * out only if they are still unfinished when `quietClaimsTimer` fires
   */
  quietClaims?: Map<InstanceRecord, { step: string, index: number | null, attempt: number, ts: number }>
  quietClaimsTimer?: NodeJS.Timeout
  pumpQueued?: boolean
  /** every event of the request, for server-sent events */
  events: RequestEvent[]
  createdAt: number
  /** what functions run here wrote with ctx.log */
  logs: LogLine[]
  /** the runs this peer made */
  runs: RunRecord[]
  /** step -> when it should start at the latest, ms after `createdAt` (urgency.ts; pool order) */
  latestStart?: Map<string, number>
  /** dataflow: step -> the peer its single-step module is warmed on for this request (warm-plan.ts) */
  warmPlan?: Map<string, string>
}

export function newTracked (): Tracked {
  return {
    early: [],
    runners: new Map(),
    waiters: new Set(),
    conditionsInFlight: new Set(),
    dirty: new Set(),
    unplaced: new Set(),
    outcomeDirty: true,
    order: new Map(),
    events: [],
    logs: [],
    runs: [],
    createdAt: Date.now()
  }
}
