import '../node/util/polyfill.ts'
import { startPeer, connectAll, stopPeer, randomBytes } from '../test/dstore/helpers.ts'
const shared = process.env.SHARED === '1'
const mib = Number(process.env.MIB ?? 1)
const a = await startPeer({ replicas: 0, sharedStore: shared }); const b = await startPeer({ replicas: 0, sharedStore: shared })
await connectAll([a, b])
const vals = []
for (let i = 0; i < 30; i++) vals.push((await a.store.put(randomBytes(mib << 20, i + 1), { provide: false })).cid)
import { Session } from 'node:inspector/promises'
import { writeFileSync } from 'node:fs'
const session = new Session(); session.connect()
await session.post('Profiler.enable'); await session.post('Profiler.start')
const c0 = process.cpuUsage(); const t0 = performance.now()
for (const cid of vals) await b.store.get(cid, { holders: [a.libp2p.peerId] })
const c = process.cpuUsage(c0)
const { profile } = await session.post('Profiler.stop')
writeFileSync('/tmp/dp-prof/get.cpuprofile', JSON.stringify(profile))
console.log(`${shared ? 'shared' : 'tcp'} ${mib} MiB: ${((performance.now() - t0) / 30).toFixed(1)} ms wall/get, ${((c.user + c.system) / 1000 / 30).toFixed(1)} ms cpu/get`)
await stopPeer(a); await stopPeer(b)
process.exit(0)
