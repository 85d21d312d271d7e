/**
 * `npm run bench:store [-- --json]`: DStore get throughput between two peer processes, against a raw
 * baseline on the same path, for 1, 16 and 64 MiB values; then local put/get latency (text mode only).
 *
 * Rows (every one measured between this process, the reader, and a forked holder process):
 * - tcp: both peers run with the shared store off. raw = a raw libp2p stream on the same connection
 *   (TCP + noise + yamux, DStore's connection settings) from the holder; get = DStore get of a fresh value.
 * - same-host: both peers run with the shared store on. raw = a plain copy between the two processes: the
 *   holder writes the bytes from its heap into a fresh /dev/shm file, the reader reads them into a fresh
 *   buffer (timed at the reader from the request to the last byte; the two copies any hand-over between
 *   processes without shared mappings costs). get = DStore get of a fresh value, verified (the holder
 *   checked every block against its CID when it wrote it; the reader checks it links the attested file).
 * Text mode also prints the holder's put time per size and, after all rows, how long the reader takes to fill a
 * new buffer of each size (first-touch page faults: the floor of a get, which hands its caller new memory).
 * Figures are medians of ROUNDS (default 3) rounds after a warm-up (SIZES=1,16,64 and PATHS=tcp,same-host
 * narrow a run; WINDOW sets DStore's window); `--json` prints only
 * {"rows": [{"path", "sizeMiB", "rawMiBps", "getMiBps", "ratio"}]} on stdout.
 */
import '../node/util/polyfill.ts'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as hdr from 'hdr-histogram-js'
import { createDflowLibp2p, type DflowLibp2p } from '../node/network/libp2p.ts'
import { DStoreService } from '../node/dstore/dstore.ts'
import type { Stream } from '@libp2p/interface'

const MiB = 1024 * 1024
const RAW_PROTOCOL = '/dflow/bench/raw/1.0.0'
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const SIZES = (process.env.SIZES ?? '1,16,64').split(',').map(Number)
const PATHS = (process.env.PATHS ?? 'tcp,same-host').split(',') as Array<'tcp' | 'same-host'>
const JSON_OUT = process.argv.includes('--json')

export interface StoreRow { path: 'same-host' | 'tcp', sizeMiB: number, rawMiBps: number, getMiBps: number, ratio: number }

function bytesOf (n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n)
  const view = new Uint32Array(out.buffer, 0, Math.floor(n / 4))
  let x = seed >>> 0 || 1
  for (let i = 0; i < view.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; view[i] = x >>> 0 }
  return out
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }

/**
 * CPU time of both processes over `op` (ms): on a busy machine wall time mostly measures the queue for a
 * core; CPU time is the work done, so its ratio stays meaningful. (The holder's figure includes its IPC.)
 */
async function withCpu (h: Holder, op: () => Promise<number>): Promise<{ ms: number, cpu: number }> {
  const h0 = (await h.ask({ op: 'cpu' })).cpuMs as number
  const r0 = cpuMs()
  const ms = await op()
  const r1 = cpuMs()
  const h1 = (await h.ask({ op: 'cpu' })).cpuMs as number
  return { ms, cpu: (r1 - r0) + (h1 - h0) }
}
const say = (line: string): void => { if (!JSON_OUT) console.log(line) }

async function peer (shared: boolean): Promise<{ libp2p: DflowLibp2p, store: DStoreService }> {
  const libp2p = await createDflowLibp2p({ privateKey: await generateKeyPair('Ed25519') })
  await libp2p.start()
  const window = process.env.WINDOW != null ? Number(process.env.WINDOW) : undefined
  const store = new DStoreService({ libp2p, logger: defaultLogger(), config: { replicas: 0, capacity: 4096 * MiB, sharedStore: shared, ...(window != null ? { window } : {}) } })
  await store.start()
  return { libp2p, store }
}

type HolderRequest = { id: number, op: 'put', size: number, seed: number } | { id: number, op: 'copy', size: number } | { id: number, op: 'unpin' } | { id: number, op: 'cpu' }

/** The holder process: a peer that puts values on request, serves the raw stream and the plain copy. */
async function holder (shared: boolean): Promise<void> {
  const { libp2p, store } = await peer(shared)
  const payload = bytesOf(64 * MiB, 9)
  const dir = await mkdtemp('/dev/shm/dflow-bench-')
  await libp2p.handle(RAW_PROTOCOL, (stream: Stream) => {
    void (async () => {
      for await (const first of stream) {
        const size = first.subarray(0, 1)[0] * MiB
        for (let off = 0; off < size; off += 256 * 1024) {
          if (!stream.send(payload.subarray(off, Math.min(off + 256 * 1024, size)))) await stream.onDrain({ signal: AbortSignal.timeout(60_000) })
        }
        await stream.close()
        break
      }
    })().catch(err => { stream.abort(err) })
  })
  const stop = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true })
    await store.stop(); await libp2p.stop()
    process.exit(0)
  }
  process.on('disconnect', () => { void stop() })
  process.on('message', (m: HolderRequest) => {
    void (async () => {
      if (m.op === 'put') {
        // no provider record: a get names its holder, and a background DHT provide would run during the get
        const value = bytesOf(m.size, m.seed)
        const t0 = performance.now()
        const { cid } = await store.put(value, { pin: 'bench', provide: false })
        process.send?.({ id: m.id, cid: cid.toString(), putMs: performance.now() - t0 })
      } else if (m.op === 'copy') {
        const path = join(dir, `copy-${m.id}`)
        await writeFile(path, payload.subarray(0, m.size))
        process.send?.({ id: m.id, path })
      } else if (m.op === 'cpu') {
        const u = process.cpuUsage()
        process.send?.({ id: m.id, cpuMs: (u.user + u.system) / 1000 })
      } else {
        await store.unpinRequest('bench')
        process.send?.({ id: m.id })
      }
    })().catch(err => { process.send?.({ id: m.id, error: String(err) }) })
  })
  process.send?.({ ready: libp2p.getMultiaddrs()[0].toString(), peerId: libp2p.peerId.toString() })
}

class Holder {
  private next = 1
  private readonly waiting = new Map<number, (m: any) => void>()
  readonly addr: Promise<string>
  peerId = ''
  constructor (readonly child: ChildProcess) {
    this.addr = new Promise((resolve, reject) => {
      child.once('exit', code => { reject(new Error(`holder exited with ${code}`)) })
      child.on('message', (m: any) => {
        if (m.ready != null) { this.peerId = m.peerId; resolve(m.ready); return }
        const w = this.waiting.get(m.id)
        this.waiting.delete(m.id)
        w?.(m)
      })
    })
  }

  async ask (req: Record<string, unknown>): Promise<any> {
    const id = this.next++
    const answer = new Promise<any>(resolve => { this.waiting.set(id, resolve) })
    this.child.send({ ...req, id })
    const m = await answer
    if (m.error != null) throw new Error(`holder: ${m.error}`)
    return m
  }
}

function startHolder (shared: boolean): Holder {
  const child = fork(process.argv[1], ['--holder', shared ? 'shared' : 'tcp'], { execArgv: process.execArgv, stdio: ['ignore', 2, 2, 'ipc'] })
  return new Holder(child)
}

async function rawStream (reader: DflowLibp2p, holderAddr: string, size: number): Promise<number> {
  const t0 = performance.now()
  const stream = await reader.dialProtocol(multiaddr(holderAddr), RAW_PROTOCOL, { signal: AbortSignal.timeout(60_000) })
  stream.send(Uint8Array.of(size / MiB))
  let got = 0
  for await (const chunk of stream) got += chunk.byteLength
  const ms = performance.now() - t0
  if (got !== size) throw new Error(`raw stream delivered ${got}/${size}`)
  await stream.close().catch(() => {})
  return ms
}

async function plainCopy (h: Holder, size: number): Promise<number> {
  const t0 = performance.now()
  const { path } = await h.ask({ op: 'copy', size })
  const out = new Uint8Array(size)
  const fh = await open(path, 'r')
  try {
    let done = 0
    while (done < size) {
      const { bytesRead } = await fh.read(out, done, size - done, done)
      if (bytesRead === 0) break
      done += bytesRead
    }
    if (done !== size) throw new Error(`plain copy read ${done}/${size}`)
  } finally { await fh.close() }
  const ms = performance.now() - t0
  await rm(path, { force: true })
  return ms
}

/**
 * Times filling a new buffer of `size` bytes (64 MiB is always a fresh mapping), ROUNDS times: on a VM whose host backs
 * guest memory lazily, first-touch page faults cost more than the copy itself, and every get hands its caller
 * such a buffer (text mode only).
 */
function fills (size: number): number[] {
  const out: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    Buffer.allocUnsafeSlow(size).fill(r + 1)
    out.push(performance.now() - t0)
  }
  return out
}

async function measurePath (path: StoreRow['path']): Promise<StoreRow[]> {
  const shared = path === 'same-host'
  const h = startHolder(shared)
  const reader = await peer(shared)
  const rows: StoreRow[] = []
  try {
    const addr = await h.addr
    await reader.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
    const holders = [peerIdFromString(h.peerId)]
    let seed = 1
    const puts: number[] = []
    const get = async (size: number): Promise<{ ms: number, cpu: number }> => {
      const { cid, putMs } = await h.ask({ op: 'put', size, seed: seed++ })
      puts.push(putMs)
      return withCpu(h, async () => {
        const t0 = performance.now()
        const v = await reader.store.get(CID.parse(cid), { holders })
        const ms = performance.now() - t0
        if (!(v instanceof Uint8Array) || v.byteLength !== size) throw new Error('wrong value')
        return ms
      })
    }
    for (const mib of SIZES) {
      const size = mib * MiB
      const raw = async (): Promise<{ ms: number, cpu: number }> => withCpu(h, async () => shared ? plainCopy(h, size) : rawStream(reader.libp2p, addr, size))
      await raw(); await get(size) // warm-up
      puts.length = 0
      const raws: number[] = []
      const gets: number[] = []
      const rawCpu: number[] = []
      const getCpu: number[] = []
      for (let r = 0; r < ROUNDS; r++) {
        const a = await raw()
        raws.push(a.ms); rawCpu.push(a.cpu)
        const b = await get(size)
        gets.push(b.ms); getCpu.push(b.cpu)
      }
      await h.ask({ op: 'unpin' })
      await reader.store.unpinRequest('bench').catch(() => {})
      const rawMiBps = mib / (median(raws) / 1000)
      const getMiBps = mib / (median(gets) / 1000)
      rows.push({ path, sizeMiB: mib, rawMiBps: Math.round(rawMiBps), getMiBps: Math.round(getMiBps), ratio: Math.round(getMiBps / rawMiBps * 100) / 100 })
      say(`${path.padEnd(9)} ${String(mib).padStart(3)} MiB  ${rawMiBps.toFixed(0).padStart(6)} MiB/s ${median(raws).toFixed(1).padStart(7)} ms  ${getMiBps.toFixed(0).padStart(6)} MiB/s ${median(gets).toFixed(1).padStart(7)} ms  ${(getMiBps / rawMiBps).toFixed(2)}   cpu ms raw ${median(rawCpu).toFixed(0)} get ${median(getCpu).toFixed(0)}`)
      say(`${''.padEnd(19)}holder put ${median(puts).toFixed(1)} ms (not in the get's time)`)
    }
    const stats = reader.store.stats()
    say(`          reader: ${stats.transfers} transfers, ${stats.sharedBlocks} blocks from the shared directory`)
  } finally {
    await reader.store.stop(); await reader.libp2p.stop()
    h.child.disconnect()
    await new Promise(resolve => { if (h.child.exitCode != null) resolve(null); else h.child.once('exit', resolve) })
  }
  return rows
}

async function localLatency (): Promise<void> {
  const store = new DStoreService({ logger: defaultLogger() })
  await store.start()
  try {
    for (const [label, make] of [
      ['1 KiB object', (i: number) => ({ i, payload: 'x'.repeat(1000) })],
      ['64 KiB bytes', (i: number) => bytesOf(64 * 1024, i + 1)]
    ] as const) {
      const put = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
      const get = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: 3 })
      for (let i = 0; i < 3000; i++) {
        const value = make(i)
        let t0 = performance.now()
        const { cid } = await store.put(value, { pin: 'bench' })
        put.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)))
        t0 = performance.now()
        await store.get(cid)
        get.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)))
      }
      console.log(`local ${label.padEnd(13)} put p50 ${put.getValueAtPercentile(50)} us  p99 ${put.getValueAtPercentile(99)} us   get p50 ${get.getValueAtPercentile(50)} us  p99 ${get.getValueAtPercentile(99)} us  (n=3000)`)
      await store.unpinRequest('bench')
    }
  } finally { await store.stop() }
}

async function main (): Promise<void> {
  const role = process.argv.indexOf('--holder')
  if (role >= 0) { await holder(process.argv[role + 1] === 'shared'); return }
  say(`DStore get between two peer processes, median of ${ROUNDS} rounds (get = fetch + verify + store + assemble + decode)`)
  say('tcp: raw = raw libp2p stream (TCP+noise+yamux); same-host: raw = plain copy through a /dev/shm file (holder writes, reader reads)')
  say('path      size     raw             DStore get      ratio  (cpu ms: both processes, medians)')
  const rows: StoreRow[] = []
  for (const path of PATHS) rows.push(...await measurePath(path))
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ rows }) + '\n')
  } else {
    // after every row, so these buffers do not warm the memory a get allocates
    for (const mib of SIZES) say(`reader: a new ${mib} MiB buffer filled in ${median(fills(mib * MiB)).toFixed(1)} ms (a get hands its caller a new buffer: the floor of its time)`)
    await localLatency()
  }
  process.exit(0)
}

await main()
