/**
 * CPU a gossip message on the events topic costs, between two peer processes: A publishes M events (M=2000), a
 * burst of B every 5 ms (BS=1,4: one message per event, then batches of 4, see protocols/events/batch.ts); B
 * receives them. Prints the receiver's and the sender's CPU (process.cpuUsage) per message and per event.
 * `npx tsx testnet/bench/micro/gossip-cost.ts`; PROF=DIR writes the receiver's --cpu-prof there.
 */
import '../../../node/util/polyfill.ts'
import { fork } from 'node:child_process'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { createDflowLibp2p } from '../../../node/network/libp2p.ts'
import { GossipBus } from '../../../node/dscheduler/bus.ts'
import { EVENTS_TOPIC } from '../../../protocols/events/index.ts'
const role = process.argv[2] ?? 'main'
if (role === 'main') {
  const M = Number(process.env.M ?? 2000)
  for (const B of (process.env.BS ?? '1,4').split(',').map(Number)) {
    const recv = fork(process.argv[1], ['recv'], { execArgv: [...process.execArgv, ...(process.env.PROF !== undefined ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : [])] })
    const addr: string = await new Promise(r => recv.once('message', (m: any) => r(m.addr)))
    const send = fork(process.argv[1], ['send', addr, String(M), String(B)], { execArgv: process.execArgv })
    const res: any = await new Promise(r => recv.once('message', r))
    const sres: any = await new Promise(r => send.once('message', r))
    console.log(`batch ${B}: receiver CPU ${(res.cpuMs / (M / B) * 1000).toFixed(0)} us per message, ${(res.cpuMs / M * 1000).toFixed(0)} us per event (${res.got} events); sender ${(sres.cpuMs / (M / B) * 1000).toFixed(0)} us per message`)
    await new Promise(r => { recv.once('exit', r); setTimeout(r, 5000) }); recv.kill(); send.kill()
  }
  process.exit(0)
}
const privateKey = await generateKeyPair('Ed25519')
const node = await createDflowLibp2p({ privateKey })
await node.start()
const bus = new GossipBus(node, defaultLogger().forComponent('x'), { privateKey })
await bus.start()
if (role === 'recv') {
  let got = 0; let c0: NodeJS.CpuUsage | undefined
  const M = 2000
  bus.onEvent(() => { if (got === 0) c0 = process.cpuUsage(); got++ })
  process.send!({ addr: node.getMultiaddrs()[0].toString() })
  const t = setInterval(() => {
    if (got >= Number(process.env.M ?? M) - 5) { const c = process.cpuUsage(c0); clearInterval(t); process.send!({ cpuMs: (c.user + c.system) / 1000, got }); setTimeout(() => process.exit(0), 300) }
  }, 200)
} else {
  const [addr, m, b] = process.argv.slice(3)
  await node.dial(multiaddr(addr))
  while (node.services.pubsub.getSubscribers(EVENTS_TOPIC).length === 0) await new Promise(r => setTimeout(r, 50))
  await new Promise(r => setTimeout(r, 1500))
  const self = node.peerId.toString()
  const c0 = process.cpuUsage()
  for (let i = 0; i < Number(m); i += Number(b)) {
    const ps = []
    for (let k = 0; k < Number(b); k++) ps.push(bus.publish({ type: 'step-done', from: self, ts: Date.now(), request: 'r-1', step: `s${i + k}`, index: null, attempt: 0, incarnation: 1, streams: {}, coldStartMs: 0, readyAt: 1, startAt: 2, endAt: 3 }))
    await Promise.all(ps)
    await new Promise(r => setTimeout(r, 5))
  }
  const c = process.cpuUsage(c0)
  process.send!({ cpuMs: (c.user + c.system) / 1000 })
  await new Promise(r => setTimeout(r, 3000))
}
