import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { equals } from 'uint8arrays/equals'
import { connectAll, randomBytes, startPeer, stopPeer, waitFor, type TestPeer } from './helpers.ts'
import { blockKey, parseChunkedRoot, verifyBlock } from '../../node/dstore/blocks.ts'
import { SharedDir } from '../../node/dstore/shared.ts'
import { configToArgs, parseFlagValues, resolveConfig } from '../../node/config.ts'
import { FETCH_PROTOCOL } from '../../protocols/fetch/constants.ts'
import type { CID } from 'multiformats/cid'

const MiB = 1024 * 1024
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** The chunk CIDs of a value held by `p`. */
async function chunksOf (p: TestPeer, cid: CID): Promise<CID[]> {
  const root = await p.store.local.getBlock(cid)
  return parseChunkedRoot(cid, root!)!.chunks
}

/** Connects two peers and waits until each side sees the other (an inbound connection registers a moment later). */
async function link (x: TestPeer, y: TestPeer): Promise<void> {
  await connectAll([x, y])
  await waitFor(() => x.libp2p.getPeers().some(p => p.equals(y.libp2p.peerId)) && y.libp2p.getPeers().some(p => p.equals(x.libp2p.peerId)), 'both sides connected')
}

function fileOf (p: TestPeer, cid: CID): string {
  return p.store.local.blocks.shared!.dir.path(blockKey(cid))
}

describe('same-host fast path', () => {
  let a: TestPeer
  let b: TestPeer
  // each test reads a fresh value from `a` at `b`
  beforeAll(async () => {
    a = await startPeer({ replicas: 0, sharedStore: true, chunkSize: 256 * 1024 })
    b = await startPeer({ replicas: 0, sharedStore: true, chunkSize: 256 * 1024 })
    await link(a, b)
  })
  afterAll(async () => { await stopPeer(a); await stopPeer(b) })

  it('moves blocks through the shared directory, not the stream, and the value is intact', async () => {
    expect(a.store.stats().sharedStore).toBe(true)
    const value = randomBytes(MiB + 100_000, 3) // 5 chunks: 4 of 256 KiB and one of ~100 KB
    const { cid } = await a.store.put(value)
    const before = b.traffic.snapshot().protocols[FETCH_PROTOCOL]?.received ?? 0
    const { sharedBlocks: s0, sharedBytes: sb0 } = b.store.stats()
    const got = await b.store.get(cid, { holders: [a.libp2p.peerId] })
    expect(equals(got as Uint8Array, value)).toBe(true)
    expect(b.store.stats().sharedBlocks - s0).toBe(5)
    // the bytes the traffic counters do not see are counted here: the five chunks (the value and its few bytes of
    // dag-cbor header); the root came as bytes
    expect(b.store.stats().sharedBytes - sb0).toBeGreaterThan(value.byteLength)
    expect(b.store.stats().sharedBytes - sb0).toBeLessThan(value.byteLength + 16)
    // the root (a few hundred bytes) and five shared frames crossed the stream, not the megabyte
    expect((b.traffic.snapshot().protocols[FETCH_PROTOCOL]?.received ?? 0) - before).toBeLessThan(4096)
    // the reader linked the holder's files: same inode, no copy
    const [c0] = await chunksOf(a, cid)
    expect((await stat(fileOf(b, c0))).ino).toBe((await stat(fileOf(a, c0))).ino)
  })

  it('a value of one block (a whole 1 MiB byte string) is read from its holder\'s file with no message, checked by its hash', async () => {
    const big = await startPeer({ replicas: 0, sharedStore: true })
    try {
      await link(big, b)
      const value = randomBytes(MiB, 4)
      const { cid } = await big.store.put(value)
      expect(await big.store.local.blockKeys(cid)).toHaveLength(1)
      const before = b.traffic.snapshot().total.sent + b.traffic.snapshot().total.received
      const { directReads: d0, transfers: t0, sharedBytes: sb0 } = b.store.stats()
      expect(equals(await b.store.get(cid, { holders: [big.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
      expect(b.store.stats().directReads - d0).toBe(1)
      // the block: the byte string and its few bytes of dag-cbor header
      expect(b.store.stats().sharedBytes - sb0).toBeGreaterThan(MiB)
      expect(b.store.stats().sharedBytes - sb0).toBeLessThan(MiB + 16)
      expect(b.store.stats().transfers - t0).toBe(0)
      expect(b.traffic.snapshot().total.sent + b.traffic.snapshot().total.received - before).toBe(0)
      // linked, not copied; and b holds it now: a second get reads its own link
      expect((await stat(fileOf(b, cid))).ino).toBe((await stat(fileOf(big, cid))).ino)
      expect(equals(await b.store.get(cid) as Uint8Array, value)).toBe(true)
    } finally { await stopPeer(big) }
  })

  it('a one-block file planted in the holder\'s place fails its hash and is not kept; the value comes from the network', async () => {
    const value = randomBytes(200 * 1024, 15)
    const { cid } = await a.store.put(value)
    const other = await startPeer({ replicas: 0, sharedStore: false })
    try {
      await link(other, b)
      await other.store.put(value)
      const path = fileOf(a, cid)
      await writeFile(`${path}.planted`, randomBytes(200 * 1024, 667))
      await rename(`${path}.planted`, path)
      const { directReads: d0, verificationFailures: f0 } = b.store.stats()
      expect(equals(await b.store.get(cid, { holders: [a.libp2p.peerId, other.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
      expect(b.store.stats().directReads - d0).toBe(0)
      expect(b.store.stats().verificationFailures - f0).toBeGreaterThanOrEqual(1)
      await verifyBlock(cid, (await b.store.local.getBlock(cid))!)
    } finally { await stopPeer(other) }
  })

  it('a holder whose directory names another network namespace (another emulated host) is not read directly', async () => {
    const x = await startPeer({ replicas: 0, sharedStore: true })
    const y = await startPeer({ replicas: 0, sharedStore: true })
    try {
      await link(x, y)
      await writeFile(join(x.store.local.blocks.shared!.dir.dir, 'host'), 'another-namespace')
      const value = randomBytes(100 * 1024, 16)
      const { cid } = await x.store.put(value)
      expect(equals(await y.store.get(cid, { holders: [x.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
      expect(y.store.stats().directReads).toBe(0)
      expect(y.store.stats().transfers).toBe(1)
    } finally { await stopPeer(x); await stopPeer(y) }
  })

  it('pushTo a same-host peer is left out for a value in a shared file (the consumer reads it when it asks), not for a small one', async () => {
    const c = await startPeer({ replicas: 0, sharedStore: true }, { acceptPush: () => true })
    try {
      await link(a, c)
      const meta = { request: 'r', step: 's', output: 'o', index: null }
      const big = await a.store.put(randomBytes(100 * 1024, 17))
      const small = await a.store.put(randomBytes(1000, 18))
      const { pushesSkipped: k0, pushesSent: p0 } = a.store.stats()
      a.store.pushTo(c.libp2p.peerId, big.cid, meta)
      a.store.pushTo(c.libp2p.peerId, small.cid, meta)
      expect(a.store.stats().pushesSkipped - k0).toBe(1)
      await waitFor(() => c.store.local.hasValue(small.cid), 'the small value pushed')
      expect(a.store.stats().pushesSent - p0).toBe(1)
      expect(c.store.local.hasValue(big.cid)).toBe(false)
    } finally { await stopPeer(c) }
  })

  it('a one-block value that is a 3-entry map (first byte 0xa3, like a chunked root) is still read from the holder\'s file', async () => {
    const value = { a: randomBytes(40_000, 14), b: 1, c: 'three' }
    const { cid } = await a.store.put(value)
    expect(await a.store.local.blockKeys(cid)).toHaveLength(1)
    const s0 = b.store.stats().directReads
    const f0 = b.store.stats().verificationFailures
    expect(await b.store.get(cid, { holders: [a.libp2p.peerId] })).toEqual(value)
    expect(b.store.stats().directReads - s0).toBe(1)
    expect(b.store.stats().verificationFailures - f0).toBe(0)
    // read back from b's own store (its link of a's file) it is the same value
    expect(await b.store.local.readValue(cid)).toEqual(value)
  })

  /** Puts `value` at `a` and at a TCP-only peer too: after `a`'s file is spoiled, the value must come from the other. */
  async function spoiled (seed: number, spoil: (path: string) => Promise<void>): Promise<void> {
    const value = randomBytes(MiB, seed)
    const { cid } = await a.store.put(value)
    const other = await startPeer({ replicas: 0, sharedStore: false, chunkSize: 256 * 1024 })
    try {
      await link(other, b)
      await other.store.put(value)
      const victim = (await chunksOf(a, cid))[2]
      await spoil(fileOf(a, victim))
      const f0 = b.store.stats().verificationFailures
      const got = await b.store.get(cid, { holders: [a.libp2p.peerId, other.libp2p.peerId] })
      expect(equals(got as Uint8Array, value)).toBe(true)
      // b refused the shared file; a noticed its file is not the one it wrote and stopped serving that block
      expect(b.store.stats().verificationFailures - f0).toBeGreaterThanOrEqual(1)
      expect(a.store.local.blocks.hasKey(victim)).toBe(false)
      await verifyBlock(victim, (await b.store.local.getBlock(victim))!)
    } finally { await stopPeer(other) }
  }

  it('a block file replaced by another (planted) is refused; the value comes verified from another holder', async () => {
    await spoiled(5, async path => {
      await writeFile(`${path}.planted`, randomBytes(256 * 1024, 666))
      await rename(`${path}.planted`, path)
    })
  })

  it('a block file rewritten in place (wrong bytes, same inode) is refused', async () => {
    await spoiled(6, async path => {
      // the kernel's file clock ticks every few ms: a later write gets a later mtime
      await sleep(50)
      const fh = await open(path, 'r+')
      await fh.write(Uint8Array.of(1, 2, 3, 4), 0, 4, 100)
      await fh.close()
    })
  })

  it('a push to a same-host peer lands through the shared directory', async () => {
    const value = randomBytes(600 * 1024, 7)
    const { cid } = await a.store.put(value)
    const s0 = b.store.stats().sharedBlocks
    await a.store.push(b.libp2p.peerId, cid, { request: '', step: '', output: '', index: null }).catch(err => {
      // b was not chosen (replicas: 0) and has no claim: it refuses; accept it through the hook instead
      expect((err as Error).name).toBe('PushRejectedError')
    })
    const c = await startPeer({ replicas: 0, sharedStore: true }, { acceptPush: () => true })
    try {
      await link(a, c)
      await a.store.push(c.libp2p.peerId, cid, { request: 'r', step: 's', output: 'o', index: null })
      expect(c.store.stats().sharedBlocks).toBe(3)
      expect(equals(await c.store.get(cid) as Uint8Array, value)).toBe(true)
    } finally { await stopPeer(c) }
    expect(b.store.stats().sharedBlocks - s0).toBe(0)
  })

  it('peers of another network on the same host do not use it; the value moves over the stream', async () => {
    const other = await startPeer({ replicas: 0, sharedStore: true, networkId: 'another-network' })
    try {
      await link(a, other)
      const value = randomBytes(400 * 1024, 8)
      const { cid } = await a.store.put(value)
      expect(equals(await other.store.get(cid, { holders: [a.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
      expect(other.store.stats().sharedBlocks).toBe(0)
      expect(other.store.stats().sharedStore).toBe(true)
    } finally { await stopPeer(other) }
  })

  it('with a data dir, shared blocks are also on disk: a restarted peer still serves them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dstore-shared-'))
    try {
      const first = await startPeer({ dataDir: dir, replicas: 0, sharedStore: true, chunkSize: 256 * 1024 })
      const value = randomBytes(700 * 1024, 12)
      const { cid } = await first.store.put(value)
      await link(first, b)
      const s0 = b.store.stats().sharedBlocks
      expect(equals(await b.store.get(cid, { holders: [first.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
      expect(b.store.stats().sharedBlocks - s0).toBe(3)
      const key = first.key
      await stopPeer(first)
      const again = await startPeer({ dataDir: dir, replicas: 0, sharedStore: true, chunkSize: 256 * 1024 }, {}, key)
      try {
        expect(equals(await again.store.get(cid) as Uint8Array, value)).toBe(true)
        const c = await startPeer({ replicas: 0, sharedStore: true, chunkSize: 256 * 1024 })
        try {
          await link(again, c)
          expect(equals(await c.store.get(cid, { holders: [again.libp2p.peerId] }) as Uint8Array, value)).toBe(true)
        } finally { await stopPeer(c) }
      } finally { await stopPeer(again) }
    } finally { await rm(dir, { recursive: true, force: true }) }
  })

  it('a shared block collected before its data-dir copy is due never reaches the disk; one still held does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dstore-shared-'))
    try {
      const p = await startPeer({ dataDir: dir, replicas: 0, sharedStore: true })
      try {
        const kept = await p.store.put(randomBytes(100 * 1024, 21), { pin: 'kept-request' })
        const dropped = await p.store.put(randomBytes(100 * 1024, 22), { pin: 'done-request' })
        const blocks = p.store.local.blocks
        expect(blocks.sharedFile(kept.cid)).toBeDefined()
        // not on disk yet: the copy waits
        expect(await blocks.inner.has(kept.cid)).toBe(false)
        await p.store.unpinRequest('done-request')
        await blocks.flushThrough()
        expect(await blocks.inner.has(kept.cid)).toBe(true)
        expect(await blocks.inner.has(dropped.cid)).toBe(false)
      } finally { await stopPeer(p) }
    } finally { await rm(dir, { recursive: true, force: true }) }
  })

  it('removes its directory on stop', async () => {
    const p = await startPeer({ replicas: 0, sharedStore: true })
    const { cid } = await p.store.put(randomBytes(100_000, 9))
    const dir = p.store.local.blocks.shared!.dir.dir
    expect(existsSync(fileOf(p, cid))).toBe(true)
    await stopPeer(p)
    expect(existsSync(dir)).toBe(false)
  })
})

describe('shared directory safety and settings', () => {
  it('refuses a base directory that is not private to this user', async () => {
    const root = await mkdtemp(join(tmpdir(), 'dflow-shm-'))
    try {
      await mkdir(join(root, `dflow-${process.getuid!()}`), { mode: 0o755 })
      await expect(SharedDir.open({ root, peerId: 'p' })).rejects.toThrow(/not a private directory/)
      const p = await startPeer({ replicas: 0, sharedStore: true, sharedRoot: root })
      try { expect(p.store.stats().sharedStore).toBe(false) } finally { await stopPeer(p) }
    } finally { await rm(root, { recursive: true, force: true }) }
  })

  it('a starting peer whose pid file is still empty keeps its directory; a dead peer\'s goes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'dflow-shm-'))
    try {
      const x = await SharedDir.open({ root, peerId: 'x' })
      const ns = join(x.dir, '..')
      // 'starting': the pid file exists but is empty (read between its creation and the write); 'dead': a pid that is not alive
      await mkdir(join(ns, 'starting'), { mode: 0o700 })
      await writeFile(join(ns, 'starting', 'pid'), '')
      await mkdir(join(ns, 'dead'), { mode: 0o700 })
      await writeFile(join(ns, 'dead', 'pid'), '2147483646')
      const y = await SharedDir.open({ root, peerId: 'y' })
      expect(existsSync(join(ns, 'starting'))).toBe(true)
      expect(existsSync(join(ns, 'dead'))).toBe(false)
      expect(existsSync(x.dir)).toBe(true)
      await Promise.all([x.close(), y.close()])
    } finally { await rm(root, { recursive: true, force: true }) }
  })

  it('a token made for one peer is refused by another, and by another network', async () => {
    const root = await mkdtemp(join(tmpdir(), 'dflow-shm-'))
    try {
      const x = await SharedDir.open({ root, peerId: 'x' })
      const y = await SharedDir.open({ root, peerId: 'y' })
      const z = await SharedDir.open({ root, peerId: 'z', namespace: 'other' })
      expect(y.isLocalToken(x.tokenFor('y'))).toBe(true)
      expect(y.isLocalToken(x.tokenFor('z'))).toBe(false)
      expect(z.isLocalToken(x.tokenFor('z'))).toBe(false)
      expect(y.isLocalToken(undefined)).toBe(false)
      await Promise.all([x.close(), y.close(), z.close()])
    } finally { await rm(root, { recursive: true, force: true }) }
  })

  it('--no-shared-store is a flag, a config key and passes through the testnet', async () => {
    // commander gives a lone --no-x flag as x: false
    expect(parseFlagValues({ sharedStore: false }).noSharedStore).toBe(true)
    expect(parseFlagValues({ sharedStore: true }).noSharedStore).toBeUndefined()
    expect(resolveConfig({ noSharedStore: true }).noSharedStore).toBe(true)
    expect(resolveConfig().noSharedStore).toBe(false)
    expect(configToArgs({ noSharedStore: true })).toEqual(['--no-shared-store'])
    const p = await startPeer({ replicas: 0, sharedStore: false })
    try { expect(p.store.stats().sharedStore).toBe(false) } finally { await stopPeer(p) }
  })
})
