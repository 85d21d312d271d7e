import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { encodeEvent, type RequestStarted } from '../../protocols/events/index.ts'
import { rankCandidates } from './placement.ts'
import type { SubmitProtocol } from '../../protocols/submit/index.ts'
import type { AwaitablePush, DStore } from '../dstore/types.ts'
import type { Membership } from './types.ts'
import type { Logger } from '@libp2p/interface'

/**
 * Which peers confirmed holding which values in earlier hand-overs, for a while: a request of a workflow sends its
 * bundle along, and re-pushing it to a peer that took it for the previous request cost a stream and a round trip
 * on each side per request (a third of the hand-over's streams). A peer that dropped the bundle since fetches it
 * from any other holder when the request starts; the bound is that of a peer restarting with an empty store
 * within `ttlMs`, which then depends on the other holders, as any peer that joins does.
 */
export class HandedOver {
  private readonly until = new Map<string, number>()
  constructor (private readonly ttlMs = 60_000, private readonly max = 4096) {}

  has (peer: string, cid: string, now = Date.now()): boolean {
    const t = this.until.get(`${peer}\n${cid}`)
    return t !== undefined && t > now
  }

  add (peer: string, cid: string, now = Date.now()): void {
    const key = `${peer}\n${cid}`
    this.until.delete(key)
    this.until.set(key, now + this.ttlMs)
    if (this.until.size > this.max) this.until.delete(this.until.keys().next().value as string)
  }

  /** a peer that restarted (new incarnation) or left holds nothing we know of */
  forget (peer: string): void {
    for (const key of this.until.keys()) if (key.startsWith(`${peer}\n`)) this.until.delete(key)
  }
}

/** How many peers a submitter hands a new request to before answering its client. */
const HANDOVER_PEERS = 2
const HANDOVER_TIMEOUT_MS = 5_000

/**
 * A request must survive its submitter dying the moment after it answered the client: gossip may not have
 * carried request-started anywhere yet, and inputs too large to travel inline live only on the submitter.
 * So the submitter hands the workflow bundle, those inputs and the event itself to the best-ranked live peers
 * for the request, and answers once one of them confirmed (or none is reachable: a lone peer).
 */
export async function secureRequest (started: RequestStarted, c: { self: string, store: DStore & Partial<AwaitablePush>, membership: Membership, submit: SubmitProtocol, log: Logger, handedOver?: HandedOver }): Promise<void> {
  const others = c.membership.live().filter(p => p !== c.self)
  const targets = rankCandidates(started.request, others, new Map()).slice(0, HANDOVER_PEERS)
  if (targets.length === 0 || c.store.push === undefined) return
  const push = c.store.push.bind(c.store)
  const event = encodeEvent(started)
  const signal = AbortSignal.timeout(HANDOVER_TIMEOUT_MS)
  const values = [
    { cid: started.workflow, output: 'workflow' },
    ...Object.entries(started.inputs).filter(([, ref]) => ref.inline === undefined).map(([name, ref]) => ({ cid: ref.cid, output: name }))
  ]
  try {
    await Promise.any(targets.map(async p => {
      const peer = peerIdFromString(p)
      for (const v of values) {
        if (c.handedOver?.has(p, v.cid) === true) continue
        await push(peer, CID.parse(v.cid), { request: started.request, step: 'inputs', output: v.output, index: null }, signal)
        c.handedOver?.add(p, v.cid)
      }
      await c.submit.call(peer, { op: 'announce', event }, signal)
    }))
  } catch (err) {
    c.log('request %s: no peer confirmed the hand-over (%s); it lives on gossip alone', started.request, (err as Error).message)
  }
}
