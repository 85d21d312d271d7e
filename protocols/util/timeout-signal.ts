/**
 * AbortSignal.any([...signals, AbortSignal.timeout(ms)]) whose timeout a GC cannot lose. Node 20's timer holds
 * its timeout signal only weakly, and a composite from AbortSignal.any() does not hold its sources either, so
 * after a GC the timeout never fires and the call it bounds waits for the other signals alone (nodejs/node#57736;
 * reproduced on Node 20.20: a 100 ms timeout inside any() never fired after gc()). Seen as a sync exchange with a
 * silent peer that waited 10 s instead of its 200 ms read timeout. Here the composite holds its timeout (a
 * WeakMap entry): the timeout lives exactly as long as someone can observe the composite, and no longer (holding
 * every timeout until it fired kept 5 MiB per 1000 requests of 60 s fetch timeouts at rest).
 */
const keep = new WeakMap<AbortSignal, AbortSignal>()

export function anyWithTimeout (signals: Array<AbortSignal | undefined>, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms)
  const composite = AbortSignal.any([...signals.filter((s): s is AbortSignal => s !== undefined), timeout])
  keep.set(composite, timeout)
  return composite
}
