import { describe, expect, it } from 'vitest'
import { exposeGc } from '../../node/util/idle-gc.ts'
import { pendingTimeoutSignals, timeoutSignal } from '../../protocols/util/timeout-signal.ts'

const sleep = async (ms: number): Promise<void> => new Promise(resolve => { setTimeout(resolve, ms) })

/** whether a timeout inside AbortSignal.any() still fires when GCs run while it waits */
async function firesAfterGc (make: (ms: number) => AbortSignal): Promise<boolean> {
  const gc = exposeGc()
  if (gc === undefined) throw new Error('no gc() here')
  const never = new AbortController()
  const composite = AbortSignal.any([never.signal, make(100)])
  let fired = false
  composite.addEventListener('abort', () => { fired = true })
  for (let i = 0; i < 3; i++) { gc(); await sleep(10) }
  await sleep(400)
  return fired
}

describe('timeoutSignal: a timeout inside AbortSignal.any() that a GC cannot lose', () => {
  it('fires after GCs (Node 20\'s AbortSignal.timeout inside any() does not: nodejs/node#57736)', async () => {
    // the same with a plain AbortSignal.timeout returned false on Node 20.20 (not asserted: it rests on when V8
    // collects, and a later Node fixes it)
    expect(await firesAfterGc(timeoutSignal)).toBe(true)
  })

  it('aborts with a TimeoutError and lets go of the signal once fired', async () => {
    const before = pendingTimeoutSignals()
    const s = timeoutSignal(20)
    expect(pendingTimeoutSignals()).toBe(before + 1)
    await sleep(100)
    expect(s.aborted).toBe(true)
    expect((s.reason as Error).name).toBe('TimeoutError')
    expect(pendingTimeoutSignals()).toBe(before)
  })
})
