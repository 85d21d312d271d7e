/**
 * Latency of one event hop between two idle peer processes on loopback, and where it goes: A publishes one
 * step-done every 30 ms through the GossipBus (as a peer does), B times its arrival. Prints the sender's delay from
 * bus.publish to gossipsub's publish and to its return, and the receiver's delay to the topic validator and to the
 * event handler, each at p50 over 100 events (same host, so both clocks agree).
 * `npx tsx testnet/bench/micro/gossip-hop.ts`. A diagnostic, not a benchmark: a loaded host multiplies every part.
 */
import '../../../node/util/polyfill.ts'
import { fork } from 'node:child_process'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { createDflowLibp2p } from '../../../node/network/libp2p.ts'
import { GossipBus } from '../../../node/dscheduler/bus.ts'
import { EVENTS_TOPIC } from '../../../protocols/events/index.ts'

const EVENTS = 100
const now = (): number => performance.timeOrigin + performance.now()
const p50 = (xs: number[]): string => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2)
const role = process.argv[2] ?? 'main'

if (role === 'main') {
  const recv = fork(process.argv[1], ['recv'], { execArgv: process.execArgv })
  const addr: string = await new Promise(resolve => recv.once('message', (m: { addr: string }) => { resolve(m.addr) }))
  const send = fork(process.argv[1], ['send', addr], { execArgv: process.execArgv })
  const [r, s] = await Promise.all([
    new Promise<Record<string, number[]>>(resolve => recv.once('message', resolve)),
    new Promise<Record<string, number[]>>(resolve => send.once('message', resolve))
  ])
  console.log(`sender: bus.publish -> gossipsub publish ${p50(s.called)} ms, -> publish returned ${p50(s.returned)} ms`)
  console.log(`receiver: -> topic validator ${p50(r.validator)} ms, -> event handler ${p50(r.handler)} ms (p50 of ${r.handler.length})`)
  recv.kill()
  send.kill()
  process.exit(0)
}

const privateKey = await generateKeyPair('Ed25519')
const node = await createDflowLibp2p({ privateKey })
await node.start()
const bus = new GossipBus(node, defaultLogger().forComponent('dflow:bench:gossip-hop'), { privateKey })
await bus.start()
const pubsub = node.services.pubsub as unknown as {
  topicValidators: Map<string, (from: unknown, msg: unknown) => unknown>
  publish: (...args: unknown[]) => Promise<unknown>
  getSubscribers: (topic: string) => unknown[]
}

if (role === 'recv') {
  const times: Record<string, number[]> = { validator: [], handler: [] }
  const validate = pubsub.topicValidators.get(EVENTS_TOPIC)!
  let validatedAt = 0
  pubsub.topicValidators.set(EVENTS_TOPIC, (from, msg) => { validatedAt = now(); return validate(from, msg) })
  bus.onEvent(ev => {
    if (ev.type !== 'step-done') return
    times.validator.push(validatedAt - ev.endAt)
    times.handler.push(now() - ev.endAt)
    if (times.handler.length === EVENTS) process.send!(times)
  })
  process.send!({ addr: node.getMultiaddrs()[0].toString() })
} else {
  await node.dial(multiaddr(process.argv[3]))
  while (pubsub.getSubscribers(EVENTS_TOPIC).length === 0) await new Promise(resolve => setTimeout(resolve, 50))
  await new Promise(resolve => setTimeout(resolve, 1500))
  const times: Record<string, number[]> = { called: [], returned: [] }
  const publish = pubsub.publish.bind(pubsub)
  let t0 = 0
  pubsub.publish = async (...args) => {
    times.called.push(now() - t0)
    const r = await publish(...args)
    times.returned.push(now() - t0)
    return r
  }
  const self = node.peerId.toString()
  for (let i = 0; i < EVENTS + 10; i++) {
    t0 = now()
    // endAt carries the send time to the receiver
    void bus.publish({ type: 'step-done', from: self, ts: Date.now(), request: 'r-1', step: `s${i}`, index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: t0 })
    await new Promise(resolve => setTimeout(resolve, 30))
  }
  process.send!(times)
}
