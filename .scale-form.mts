import { readFileSync } from 'node:fs'
import { checkNetwork } from '/work/wt/scale/testnet/readiness.ts'
const dir = process.argv[2]
const t0 = Date.now()
while (true) {
  let m
  try { m = JSON.parse(readFileSync(dir + '/manifest.json', 'utf8')) } catch { await new Promise(r => setTimeout(r, 500)); continue }
  if (m.peers.some((p: any) => p.pid === 0)) { await new Promise(r => setTimeout(r, 500)); continue }
  const p = await checkNetwork(m.peers)
  const conn = p.lagging.filter(l => l.connected !== undefined).length
  const mem = p.lagging.filter(l => l.notMember.length > 0).map(l => l.notMember.length)
  const unr = p.lagging.filter(l => l.unreachable !== undefined).length
  const mesh = p.lagging.filter(l => l.noMesh).length
  console.log(((Date.now() - t0) / 1000).toFixed(1), `ready ${p.ready}/${p.total} lowconn ${conn} unreach ${unr} nomesh ${mesh} membership-missing ${JSON.stringify(mem)} net ${p.network.join(';')}`)
  if (p.ready === p.total && p.network.length === 0) break
  await new Promise(r => setTimeout(r, 1000))
}
