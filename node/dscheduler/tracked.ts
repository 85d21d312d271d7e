import type { InstanceRunner } from './runner.ts'
import type { RequestState } from './request-state.ts'
import type { LoadedWorkflow } from './types.ts'
import type { RequestDone, RequestEvent } from '../../protocols/events/index.ts'

export interface LogLine { step: string, index: number | null, peer: string, line: string, ts: number }

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
  /** when this peer first saw each instance unclaimed (claim backoff counts from there) */
  firstSeen: Map<string, number>
  done?: RequestDone
  finishedAt?: number
  finishing?: boolean
  timer?: NodeJS.Timeout
  pumpQueued?: boolean
  /** every event of the request, for server-sent events */
  events: RequestEvent[]
  createdAt: number
  /** what functions run here wrote with ctx.log */
  logs: LogLine[]
}

export function newTracked (): Tracked {
  return { early: [], runners: new Map(), waiters: new Set(), conditionsInFlight: new Set(), firstSeen: new Map(), events: [], logs: [], createdAt: Date.now() }
}
