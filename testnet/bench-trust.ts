/**
 * What trust costs: per operation, signing and verifying a submission, a cancel, and validating events with
 * inline values (their CID checked) against events without; per byte, a 16 MiB transfer between two libp2p
 * nodes on loopback with and without the swarm key (pnet's XSalsa20 is pure JS).
 * `npx tsx testnet/bench-trust.ts [--json]`.
 */
import '../node/util/polyfill.ts'
import { performance } from 'node:perf_hooks'
import * as dagCbor from '@ipld/dag-cbor'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { createDflowLibp2p } from '../node/network/libp2p.ts'
import { newSwarmKey } from '../node/keys.ts'
import { claimOf, signCancel, signSubmit } from '../node/auth/signing.ts'
import { authorizeCancel, authorizeRequest } from '../node/dscheduler/authorize.ts'
import { encodeBlocks } from '../node/dstore/blocks.ts'
import { identityId } from '../node/keys.ts'

/** Best of 3: ms to read 16 MiB (16 length-prefixed 1 MiB frames) over one stream. */
async function transferMs (swarmKey?: Uint8Array): Promise<number> {
  const a = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519'), swarmKey })
  const b = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519'), swarmKey })
  await a.start()
  await b.start()
  try {
    const chunk = new Uint8Array(1024 * 1024)
    await b.handle('/dflow/bench-trust/1.0.0', async stream => {
      const lp = lpStream(stream, { maxDataLength: 2 * 1024 * 1024 })
      for (let i = 0; i < 16; i++) await lp.write(chunk)
      await stream.close()
    })
    let best = Infinity
    for (let r = 0; r < 3; r++) {
      const s = await a.dialProtocol(b.getMultiaddrs()[0], '/dflow/bench-trust/1.0.0', { signal: AbortSignal.timeout(60_000) })
      const lp = lpStream(s, { maxDataLength: 2 * 1024 * 1024 })
      const t0 = performance.now()
      for (let i = 0; i < 16; i++) await lp.read({ signal: AbortSignal.timeout(60_000) })
      best = Math.min(best, performance.now() - t0)
    }
    return best
  } finally {
    await a.stop()
    await b.stop()
  }
}
import { decodeEvent, encodeEvent, type DflowEvent, type RequestStarted } from '../protocols/events/index.ts'

async function time (name: string, n: number, fn: () => unknown): Promise<{ name: string, us: number }> {
  for (let i = 0; i < Math.min(200, n); i++) await fn()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await fn()
  return { name, us: Math.round((performance.now() - t0) * 1000 / n * 10) / 10 }
}

const key = await generateKeyPair('Ed25519')
const policy = { authorized: new Set([identityId(key)]), isNetworkPeer: () => false }
const value16k = 'x'.repeat(16 * 1024 - 8)
const enc16k = await encodeBlocks(value16k, 1024 * 1024)
const started: RequestStarted = { type: 'request-started', from: 'peerA', ts: Date.now(), request: 'r-1', workflow: enc16k.cid.toString(), inputs: { text: { cid: enc16k.cid.toString(), size: enc16k.size, holders: ['peerA'], inline: enc16k.encoded } }, mode: 'dataflow', store: 'distributed', submitter: 'peerA' }
started.auth = await signSubmit(key, claimOf(started))
const cancel = { type: 'request-cancelled' as const, from: 'peerA', ts: 1, request: 'r-1', reason: 'x', auth: await signCancel(key, 'r-1') }
const withInline: DflowEvent = { type: 'output-ready', from: 'peerA', ts: 1, request: 'r-1', attempt: 0, incarnation: 1, step: 's', index: null, output: 'o', value: started.inputs.text }
const withoutInline: DflowEvent = { ...withInline, value: { cid: enc16k.cid.toString(), size: enc16k.size, holders: ['peerA'] } } as DflowEvent
const bytesIn = encodeEvent(withInline)
const bytesOut = encodeEvent(withoutInline)
const mib = new Uint8Array(1024 * 1024)

const rows = [
  await time('sign a submission (client)', 2000, async () => signSubmit(key, claimOf(started))),
  await time('verify a submission (every peer, once per request)', 2000, () => { authorizeRequest(started, policy) }),
  await time('verify a cancel', 2000, () => { authorizeCancel(cancel, started, policy) }),
  await time('decode+validate output-ready, 16 KiB inline (CID checked)', 5000, () => decodeEvent(bytesIn)),
  await time('decode+validate output-ready, no inline value', 5000, () => decodeEvent(bytesOut)),
  await time('API: CID of a 1 MiB input to check its signature', 200, async () => encodeBlocks(mib, 1024 * 1024)),
  await time('dag-cbor encode of the signed payload', 5000, () => dagCbor.encode({ a: started.request, w: started.workflow }))
]
const plain = await transferMs()
const private_ = await transferMs(newSwarmKey())
const mibps = (ms: number): number => Math.round(16 / ms * 1000)
const transfer = { plainMiBps: mibps(plain), swarmKeyMiBps: mibps(private_) }
if (process.argv.includes('--json')) process.stdout.write(JSON.stringify({ ops: rows, transfer }) + '\n')
else {
  for (const r of rows) process.stdout.write(`${r.name.padEnd(62)} ${String(r.us).padStart(8)} µs\n`)
  process.stdout.write(`${'16 MiB over one stream, no swarm key'.padEnd(62)} ${String(transfer.plainMiBps).padStart(8)} MiB/s\n`)
  process.stdout.write(`${'16 MiB over one stream, swarm key (pnet)'.padEnd(62)} ${String(transfer.swarmKeyMiBps).padStart(8)} MiB/s\n`)
}
