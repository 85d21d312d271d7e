import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseWorkflow } from '../../node/workflow/index.ts'
import { RequestState } from '../../node/dscheduler/request-state.ts'
import { latestStarts } from '../../node/dscheduler/urgency.ts'
import { EmbeddedPeer } from '../../node/engine/embedded.ts'
import type { InvokeOptions } from '../../node/executor/types.ts'
import type { RequestStarted } from '../../protocols/events/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const CID = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

describe('urgency: when each step should start at the latest', () => {
  it('critical path minus the upward rank: a long lane\'s steps come before side steps ready with them', () => {
    const wf = parseWorkflow(readFileSync(fixture('urgency.yaml'), 'utf8'), 'urgency.yaml')
    const started = { type: 'request-started', from: 'P', ts: 1, request: 'r', workflow: CID, inputs: {}, mode: 'dataflow', store: 'distributed', submitter: 'P' } as unknown as RequestStarted
    const s = new RequestState(wf, started)
    const ms: Record<string, number> = { r: 10, s1: 30, s2: 5, a1: 20, a2: 20, a3: 20 }
    const at = latestStarts(s, step => ms[step])
    // critical path r -> a1 -> a2 -> a3: 70 ms; each of its steps has no slack
    expect(Object.fromEntries(at)).toEqual({ r: 0, a1: 10, a2: 30, a3: 50, s1: 70 - 30, s2: 70 - 5 })
  })

  it('a peer hands its pool each invocation\'s latest start: the request\'s start plus that offset', async () => {
    const peer = await EmbeddedPeer.create({ slots: 2 })
    try {
      const seen = new Map<string, number | undefined>()
      const invoke = peer.pool.invoke.bind(peer.pool)
      peer.pool.invoke = async (opts: InvokeOptions) => { seen.set(opts.step.name, opts.startBy); return await invoke(opts) }
      const v = await peer.run(fixture('urgency.yaml'), { n: 1 }, { mode: 'control' })
      expect(v.status, v.error).toBe('ok')
      expect(v.outputs).toEqual({ lane: 5, s1: 3, s2: 3 })
      const by = (step: string): number => {
        const t = seen.get(step)
        if (t === undefined) throw new Error(`${step} was invoked without startBy`)
        return t
      }
      // the first request of a workflow: every step is expected to take the same time (nothing learned yet)
      const unit = by('a1') - by('r')
      expect(unit).toBeGreaterThan(0)
      expect(by('a2') - by('a1')).toBe(unit)
      expect(by('a3') - by('a2')).toBe(unit)
      expect(by('s1')).toBe(by('a3'))
      expect(by('s2')).toBe(by('a3'))
    } finally {
      await peer.stop()
    }
  })
})
