/** setTimeout clamps delays of 2^31 ms or more to 1 ms: longer waits are chained in steps below the limit. */
const MAX_DELAY_MS = 2 ** 31 - 1

export interface LongTimer { clear: () => void }

export function setLongTimeout (fn: () => void, ms: number): LongTimer {
  let handle: NodeJS.Timeout | undefined
  const due = Date.now() + Math.max(0, ms)
  const arm = (): void => {
    const left = due - Date.now()
    handle = setTimeout(left > MAX_DELAY_MS ? arm : fn, Math.min(Math.max(0, left), MAX_DELAY_MS))
    handle.unref()
  }
  arm()
  return { clear: () => { clearTimeout(handle) } }
}
