/**
 * Scheduler counters across the testnet. Each peer's GET /v1/metrics/scheduler counts since its process
 * started, and a SIGKILLed process takes its counters with it. So every peer incarnation (keyed by pid) is
 * sampled at the start, just before it is killed, and at the end; the total is the sum over incarnations of
 * (last sample - first sample). Work a peer did between its last sample and its death is not counted.
 */
import { authHeaderFor } from '../clients.ts'
export const COUNTERS = ['claims', 'takeovers', 'reruns', 'rereplications'] as const
export type Counter = typeof COUNTERS[number]
export type Counters = Record<Counter, number>

export function zeroCounters (): Counters {
  return { claims: 0, takeovers: 0, reruns: 0, rereplications: 0 }
}

export async function fetchCounters (api: string, timeoutMs = 3000): Promise<Counters | undefined> {
  try {
    const res = await fetch(`${api}/v1/metrics/scheduler`, { headers: authHeaderFor(api), signal: AbortSignal.timeout(timeoutMs) })
    if (!res.ok) return undefined
    const body = await res.json() as Partial<Record<Counter, unknown>>
    const out = zeroCounters()
    for (const k of COUNTERS) out[k] = typeof body[k] === 'number' ? body[k] : 0
    return out
  } catch {
    return undefined
  }
}

export class CounterLedger {
  /** pid -> [baseline, latest] */
  private readonly samples = new Map<number, [Counters, Counters]>()

  /**
   * Record a sample of the incarnation `pid`. fresh: the process was started by this run, so its counters
   * start at zero; otherwise the first sample is the baseline (a testnet found running has history).
   */
  record (pid: number, counters: Counters, fresh: boolean): void {
    const had = this.samples.get(pid)
    if (had === undefined) {
      this.samples.set(pid, [fresh ? zeroCounters() : counters, counters])
      return
    }
    had[1] = counters
  }

  async sample (pid: number, api: string, fresh: boolean): Promise<void> {
    const c = await fetchCounters(api)
    if (c !== undefined) this.record(pid, c, fresh)
  }

  total (): Counters {
    const out = zeroCounters()
    for (const [base, last] of this.samples.values()) {
      for (const k of COUNTERS) out[k] += Math.max(0, last[k] - base[k])
    }
    return out
  }
}
