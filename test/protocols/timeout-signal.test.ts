import { describe, expect, it } from 'vitest'
import { exposeGc } from '../../node/util/idle-gc.ts'
import { anyWithTimeout } from '../../protocols/util/timeout-signal.ts'

const sleep = async (ms: number): Promise<void> => new Promise(resolve => { setTimeout(resolve, ms) })

describe('anyWithTimeout: a timeout inside AbortSignal.any() that a GC cannot lose', () => {
  it('fires after GCs (a plain AbortSignal.timeout inside any() did not on Node 20.20: nodejs/node#57736)', async () => {
    const gc = exposeGc()
    if (gc === undefined) throw new Error('no gc() here')
    const never = new AbortController()
    const composite = anyWithTimeout([never.signal, undefined], 100)
    let fired = false
    composite.addEventListener('abort', () => { fired = true })
    for (let i = 0; i < 3; i++) { gc(); await sleep(10) }
    await sleep(400)
    expect(fired).toBe(true)
    expect((composite.reason as Error).name).toBe('TimeoutError')
    expect(never.signal.aborted).toBe(false)
  })

  it('follows the other signals too', () => {
    const ctl = new AbortController()
    const composite = anyWithTimeout([ctl.signal], 60_000)
    ctl.abort(new Error('stopping'))
    expect(composite.aborted).toBe(true)
    expect((composite.reason as Error).message).toBe('stopping')
  })
})
