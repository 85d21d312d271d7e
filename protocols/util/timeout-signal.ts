/**
 * AbortSignal.timeout(ms) for use inside AbortSignal.any([...]). Node 20's timer holds its timeout signal only
 * weakly, and a composite from AbortSignal.any() does not hold its sources either, so after a GC the timeout
 * never fires and the call it bounds waits for the other signals alone (nodejs/node#57736; reproduced on Node
 * 20.20: a 100 ms timeout inside any() never fired after gc()). Seen as a sync exchange with a silent peer that
 * waited 10 s instead of its 200 ms read timeout. Each signal is kept alive here until it fires, so the memory
 * held is bounded by the calls started within one timeout.
 */
const pending = new Set<AbortSignal>()

export function timeoutSignal (ms: number): AbortSignal {
  const signal = AbortSignal.timeout(ms)
  pending.add(signal)
  signal.addEventListener('abort', () => { pending.delete(signal) }, { once: true })
  return signal
}

/** timeout signals not yet fired (tests) */
export function pendingTimeoutSignals (): number {
  return pending.size
}
