import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { defaultLogger } from '@libp2p/logger'
import { HandedOver, secureRequest } from '../../node/dscheduler/secure.ts'
import type { Membership } from '../../node/dscheduler/types.ts'
import type { RequestStarted } from '../../protocols/events/index.ts'

const WORKFLOW = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
const INPUT = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'

describe('request hand-over', () => {
  it('pushes a workflow bundle to each hand-over peer once while it is known to hold it, announces every request', async () => {
    const [self, b, c] = await Promise.all([0, 1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const membership = { live: () => [self, b, c], isLive: () => true } as unknown as Membership
    const pushed: string[] = []
    const announced: string[] = []
    const store = { push: async (peer: { toString: () => string }, cid: { toString: () => string }) => { pushed.push(`${peer.toString()} ${cid.toString()}`) } }
    const submit = { call: async (peer: { toString: () => string }) => { announced.push(peer.toString()); return { ok: true } } }
    const handedOver = new HandedOver()
    const started = (request: string, inputs: RequestStarted['inputs'] = {}): RequestStarted => ({ type: 'request-started', from: self, ts: 1, request, workflow: WORKFLOW, inputs, mode: 'dataflow', store: 'distributed', submitter: self })
    const hand = async (s: RequestStarted): Promise<void> => { await secureRequest(s, { self, store: store as never, membership, submit: submit as never, log: defaultLogger().forComponent('test:secure'), handedOver }) }

    await hand(started('r1'))
    expect(pushed.sort()).toEqual([`${b} ${WORKFLOW}`, `${c} ${WORKFLOW}`].sort())
    expect(announced.sort()).toEqual([b, c].sort())
    // the next request of the workflow: announced again, the bundle not pushed again; an input too large to be
    // inline is new to everyone and goes
    pushed.length = 0
    await hand(started('r2', { x: { cid: INPUT, size: 1 << 20, holders: [self] } }))
    expect(pushed.sort()).toEqual([`${b} ${INPUT}`, `${c} ${INPUT}`].sort())
    expect(announced).toHaveLength(4)
    // a peer presumed dead may come back without it
    pushed.length = 0
    handedOver.forget(b)
    await hand(started('r3'))
    expect(pushed).toEqual([`${b} ${WORKFLOW}`])
  })

  it('remembers for a while, and a bounded number of entries', () => {
    const memo = new HandedOver(1000, 2)
    memo.add('p', 'x', 0)
    expect(memo.has('p', 'x', 999)).toBe(true)
    expect(memo.has('p', 'x', 1000)).toBe(false)
    expect(memo.has('q', 'x', 0)).toBe(false)
    memo.add('p', 'y', 0)
    memo.add('p', 'z', 0)
    // the oldest entry went
    expect([memo.has('p', 'x', 1), memo.has('p', 'y', 1), memo.has('p', 'z', 1)]).toEqual([false, true, true])
  })
})
