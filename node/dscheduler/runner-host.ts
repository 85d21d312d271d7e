import { consumersOf } from './claims.ts'
import { followersOf } from './follow.ts'
import { MAX_LOG_LINES, type RunRecord } from './tracked.ts'
import type { DflowEvent } from '../../protocols/events/index.ts'
import type { RequestState } from './request-state.ts'
import type { InstanceRunner, RunnerHost } from './runner.ts'
import type { DScheduler } from './scheduler.ts'

const runRecords = new WeakMap<InstanceRunner, RunRecord>()

/** What runners get of their scheduler: the components they use and the per-request hooks. */
export function makeRunnerHost (sched: DScheduler): RunnerHost {
  return {
    self: sched.self,
    store: sched.c.store,
    pool: sched.c.pool,
    publish: async (ev: DflowEvent) => { await sched.c.bus.publish(ev) },
    changed: async (request: string, signal: AbortSignal) => new Promise<void>(resolve => {
      const t = sched.requests.get(request)
      if (t === undefined || signal.aborted) { resolve(); return }
      const done = (): void => { t.waiters.delete(done); signal.removeEventListener('abort', done); resolve() }
      t.waiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    }),
    consumersOf: (s: RequestState, step: string, output: string, element: number | null) => consumersOf(s, step, output, element),
    isLive: (peer: string) => sched.c.membership.isLive(peer),
    running: (runner: InstanceRunner) => {
      const t = sched.requests.get(runner.state.id)
      if (t !== undefined && t.finishing !== true) followersOf(t, runner.state, runner)
    },
    awaitedHere: (s: RequestState, step: string, output: string) => {
      const t = sched.requests.get(s.id)
      const readers = s.readers.get(`${step}.${output}`)
      if (t === undefined || readers === undefined) return false
      for (const r of t.runners.values()) if (!r.fired && !r.finished && readers.includes(r.stepName)) return true
      return false
    },
    startBy: (runner: InstanceRunner) => {
      const t = sched.requests.get(runner.state.id)
      const at = t?.latestStart?.get(runner.stepName)
      return t === undefined || at === undefined ? undefined : t.createdAt + at
    },
    log: (line: string, ...args: unknown[]) => { sched.log(line, ...args) },
    logLine: (request: string, step: string, index: number | null, line: string) => {
      const entry = { request, step, index, peer: sched.self, line }
      const logs = sched.requests.get(request)?.logs
      if (logs !== undefined) {
        logs.push({ ...entry, ts: Date.now() })
        if (logs.length > MAX_LOG_LINES) logs.splice(0, logs.length - MAX_LOG_LINES)
      }
      sched.safeDispatch('scheduler:log', entry)
    },
    ran: (runner: InstanceRunner, outcome) => {
      const t = sched.requests.get(runner.state.id)
      if (t === undefined) return
      const run = runRecords.get(runner)
      if (run !== undefined) { run.outcome = outcome; return }
      const rec: RunRecord = { step: runner.stepName, index: runner.index, peer: sched.self, ...runner.fence, firedAt: Date.now(), outcome, phases: runner.phases }
      runRecords.set(runner, rec)
      t.runs.push(rec)
    }
  }
}

