import { defaultLogger } from '@libp2p/logger'
import { EmbeddedPeer } from '../../node/engine/embedded.ts'
import { workflowPath } from './workload.ts'
import type { Value } from '../../node/values/codec.ts'

const log = defaultLogger().forComponent('dflow:chaos:reference')

/** JSON with object keys sorted at every level: equal values give equal strings whatever the key order. */
export function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    return Object.fromEntries(Object.keys(v as object).sort().map(k => [k, (v as Record<string, unknown>)[k]]))
  })
}

export class ReferenceRunError extends Error {
  static readonly NAME = 'ReferenceRunError'
  constructor (message: string) {
    super(message)
    this.name = ReferenceRunError.NAME
  }
}

/**
 * The clean runs: the same workflow and inputs on one embedded peer (what `dflow run` does), in this
 * process. Identical inputs are run once.
 */
export class ReferenceRunner {
  private peer?: EmbeddedPeer
  private readonly cache = new Map<string, Promise<string>>()
  /** clean runs that hung and were run again on a fresh embedded peer (an embedded-scheduler bug, not chaos) */
  retries = 0
  constructor (private readonly timeoutMs = 20_000) {}

  /** canonical JSON of the outputs of a clean run */
  async expected (workflow: string, inputs: Record<string, Value>): Promise<string> {
    const key = canonicalJson({ workflow, inputs })
    let p = this.cache.get(key)
    if (p === undefined) {
      p = this.run(workflow, inputs)
      this.cache.set(key, p)
    }
    return p
  }

  private async run (workflow: string, inputs: Record<string, Value>, attempt = 1): Promise<string> {
    const peer = this.peer ??= await EmbeddedPeer.create({ slots: 2 })
    let timer: NodeJS.Timeout | undefined
    const hung = new Promise<'hung'>(resolve => { timer = setTimeout(() => { resolve('hung') }, this.timeoutMs) })
    const view = await Promise.race([peer.run(workflowPath(workflow), inputs), hung]).finally(() => { clearTimeout(timer) })
    if (view === 'hung') {
      // the oracle itself stuck: start over on a fresh peer once, and say so in the report
      log.error('clean run of %s %s did not finish in %d ms (attempt %d)', workflow, canonicalJson(inputs), this.timeoutMs, attempt)
      this.peer = undefined
      void peer.stop().catch(() => {})
      if (attempt >= 2) throw new ReferenceRunError(`the clean run of ${workflow} ${canonicalJson(inputs)} did not finish in ${this.timeoutMs} ms, twice`)
      this.retries++
      return this.run(workflow, inputs, attempt + 1)
    }
    if (view.status !== 'ok') throw new ReferenceRunError(`the clean run of ${workflow} ${canonicalJson(inputs)} failed: ${view.error ?? view.status}`)
    return canonicalJson(view.outputs)
  }

  async stop (): Promise<void> {
    await this.peer?.stop()
    this.peer = undefined
  }
}
