import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { closeSync, constants as fsc, fstatSync, linkSync, openSync, read, readFileSync, readlinkSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { link, lstat, mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockVerificationError } from './errors.ts'
import { valueBuffer } from '../../protocols/fetch/transfer.ts'

/**
 * The same-host block directory. Every peer of one user and one network on a host shares
 *   /dev/shm/dflow-<uid>/<namespace>/           (0700, owned by the user; refused otherwise)
 *     secret                                    32 random bytes, 0600: the host token's key
 *     <peerId>/<blockKey>                       blocks this peer holds (written once, verified, immutable)
 *     <peerId>/pid                              owner process, so a crashed peer's directory is reclaimed
 *     <peerId>/host                             a hash of the owner's network namespace (see `sameHost`)
 * A peer writes only into its own directory. A reader links a holder's file into its own directory
 * (tmpfs: same inode, no copy) after checking that the inode, size and change time are those the holder
 * attested over the authenticated libp2p stream, so a block planted or rewritten by anyone else is refused;
 * or, with no message at all (`adoptVerified`), after hashing what it read against the block's CID.
 */
/** Identity of a written block file: a replaced file has another inode, a rewritten one another mtime. */
export interface SharedAttestation { ino: bigint, size: number, mtimeNs: bigint }

export interface SharedDirOptions {
  /** @default /dev/shm */
  root?: string
  /** separates networks on one host (e.g. a hash of the private network key) @default 'default' */
  namespace?: string
  peerId: string
  log?: (fmt: string, ...args: unknown[]) => void
}

const SECRET_BYTES = 32
/** the file of a peer's directory naming its network namespace (hashed) */
const HOST_FILE = 'host'
/** how long a peer found not to share this host is not looked for again, ms */
const HOST_RETRY_MS = 10_000
/** Blocks at least this large are read on the thread pool. */
const ASYNC_READ_BYTES = 256 * 1024

async function readAsync (fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, into, offset, length, position, (err, n) => { if (err != null) reject(err); else resolve(n) })
  })
}

export class SharedDir {
  readonly dir: string
  readonly nsDir: string
  private secret: Uint8Array = new Uint8Array(0)
  /**
   * The network namespace: peers in different namespaces (a testnet emulating hosts and links with
   * `ip netns`) count as different hosts, so values between them take the emulated link.
   */
  private readonly netns = netNamespace()
  private readonly peerId: string
  /** names temp files: only this process writes in its directory, and O_EXCL refuses a leftover */
  private tmpSeq = 0
  /** what this peer wrote or adopted: the reader compares against these */
  private readonly files = new Map<string, SharedAttestation>()

  private constructor (nsDir: string, peerId: string) {
    this.nsDir = nsDir
    this.peerId = peerId
    this.dir = join(nsDir, peerId)
  }

  /** Opens (creating) the namespace directory; throws when its ownership or mode is not private to this user. */
  static async open (opts: SharedDirOptions): Promise<SharedDir> {
    const uid = process.getuid?.() ?? -1
    if (uid < 0) throw new Error('shared store needs a POSIX uid')
    const root = opts.root ?? '/dev/shm'
    const base = join(root, `dflow-${uid}`)
    const ns = createHash('sha256').update(opts.namespace ?? 'default').digest('hex').slice(0, 16)
    const nsDir = join(base, ns)
    for (const d of [base, nsDir]) {
      await mkdir(d, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
      const st = await lstat(d)
      // a directory another user created (or a symlink planted to redirect us) is never used
      if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
        throw new Error(`${d} is not a private directory of uid ${uid} (mode ${(st.mode & 0o777).toString(8)}, owner ${st.uid})`)
      }
    }
    const shared = new SharedDir(nsDir, opts.peerId)
    await reclaimNamespaces(base, nsDir)
    shared.secret = await loadSecret(nsDir)
    await shared.reclaimDead(opts.log)
    await rm(shared.dir, { recursive: true, force: true })
    await mkdir(shared.dir, { mode: 0o700 })
    await writeFile(join(shared.dir, 'pid'), String(process.pid), { mode: 0o600 })
    await writeFile(join(shared.dir, HOST_FILE), shared.hostId, { mode: 0o600 })
    return shared
  }

  /** This process's network namespace, hashed: what `<peerId>/host` holds (the namespace is fixed for the process). */
  private readonly hostId = createHash('sha256').update(this.netns).digest('hex')

  /** holder peer id -> whether its directory is here and in this network namespace (negative answers expire) */
  private readonly hosts = new Map<string, { same: boolean, until: number }>()

  /**
   * Whether `peer` keeps its blocks in this namespace directory and runs in this network namespace: then its
   * files can be read here directly. A peer elsewhere (another host, or another `ip netns` of a testnet that
   * emulates hosts and links) has no such directory, or another namespace in it, and its values take the network.
   */
  sameHost (peer: string): boolean {
    if (peer === this.peerId) return false
    const now = Date.now()
    const known = this.hosts.get(peer)
    if (known !== undefined && known.until > now) return known.same
    let same = false
    if (/^[A-Za-z0-9]+$/.test(peer)) {
      try { same = readFileSync(join(this.nsDir, peer, HOST_FILE), 'utf8') === this.hostId } catch {}
    }
    if (this.hosts.size >= 4096) this.hosts.clear()
    // a peer found here stays here (a restart keeps its id and directory); one not found may be starting
    this.hosts.set(peer, { same, until: same ? Infinity : now + HOST_RETRY_MS })
    return same
  }

  /**
   * Token a peer sends to `target` to show it runs on this host as this user in this network (and network
   * namespace): only processes that can read `secret` can compute it, and it is bound to the target.
   */
  tokenFor (target: string): Uint8Array {
    return createHash('sha256').update(this.secret).update(this.netns).update('\0').update(target).digest()
  }

  /** Whether `token` was made for this peer by a process of this host, user and network. */
  isLocalToken (token: Uint8Array | undefined): boolean {
    if (token == null || token.byteLength !== SECRET_BYTES) return false
    return timingSafeEqual(token, this.tokenFor(this.peerId))
  }

  has (key: string): boolean { return this.files.has(key) }
  attestation (key: string): SharedAttestation | undefined { return this.files.get(key) }
  path (key: string): string { return join(this.dir, key) }

  /**
   * Writes a verified block (temp file + rename, so no reader sees a partial file). Synchronous system
   * calls: on tmpfs they are memory copies, and a thread-pool hop per call costs more than the call.
   */
  async put (key: string, parts: Uint8Array[]): Promise<void> {
    if (this.files.has(key)) return
    const tmp = join(this.dir, `.tmp-${++this.tmpSeq}`)
    const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600)
    try {
      let pos = 0
      for (const part of parts) {
        let done = 0
        while (done < part.byteLength) done += writeSync(fd, part, done, part.byteLength - done, pos + done)
        pos += part.byteLength
      }
      const st = fstatSync(fd, { bigint: true })
      renameSync(tmp, this.path(key))
      this.files.set(key, { ino: st.ino, size: Number(st.size), mtimeNs: st.mtimeNs })
    } catch (err) {
      try { unlinkSync(tmp) } catch {}
      throw err
    } finally { closeSync(fd) }
  }

  /**
   * Takes a block from peer `holder`'s directory after checking it is the very file the holder attested
   * (inode, size, modification time): a file replaced or rewritten since is refused. The link is
   * re-checked after it is made, so a swap between the check and the link is caught too. (ctime is not
   * compared: every link changes it.)
   */
  async adopt (key: string, holder: string, att: SharedAttestation): Promise<void> {
    if (this.files.has(key)) return
    if (!/^[a-z2-7]+$/.test(key) || holder.includes('/') || holder.startsWith('.')) throw new BlockVerificationError(`bad shared block name ${holder}/${key}`)
    const from = join(this.nsDir, holder, key)
    const check = (st: { ino: bigint, size: bigint, mtimeNs: bigint }, what: string): void => {
      if (st.ino !== att.ino || Number(st.size) !== att.size || st.mtimeNs !== att.mtimeNs) {
        throw new BlockVerificationError(`shared block ${holder}/${key} is not the file its holder attested (${what})`)
      }
    }
    let st
    try { st = statSync(from, { bigint: true }) } catch (err) {
      throw new BlockVerificationError(`shared block ${holder}/${key} is missing: ${(err as Error).message}`)
    }
    check(st, 'before link')
    const to = this.path(key)
    try { linkSync(from, to) } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new BlockVerificationError(`cannot link shared block ${holder}/${key}: ${(err as Error).message}`)
      unlinkSync(to)
      linkSync(from, to)
    }
    try {
      check(statSync(to, { bigint: true }), 'after link')
      this.files.set(key, { ...att })
    } catch (err) {
      try { unlinkSync(to) } catch {}
      throw err
    }
  }

  /**
   * Takes block `key` from same-host peer `holder`'s directory with no message to it: links the file into this
   * peer's directory, reads it (synchronously: a value's only block, at most one chunk) and checks it hashes to
   * `verify` (throws BlockVerificationError: the link is removed). The content address is the check, so no
   * attestation is needed; a planted or rewritten file fails it. Answers the bytes, or undefined when the holder
   * has no such file (gone, evicted, never written there) or it is larger than `maxBytes`.
   */
  adoptVerified (key: string, holder: string, maxBytes: number, verify: (bytes: Uint8Array) => void): Uint8Array | undefined {
    if (this.files.has(key)) return undefined
    if (!/^[a-z2-7]+$/.test(key) || !/^[A-Za-z0-9]+$/.test(holder)) throw new BlockVerificationError(`bad shared block name ${holder}/${key}`)
    const to = this.path(key)
    try { linkSync(join(this.nsDir, holder, key), to) } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return undefined
      if (code !== 'EEXIST') throw err
      // a link left by an earlier attempt that failed half way: replace it
      unlinkSync(to)
      try { linkSync(join(this.nsDir, holder, key), to) } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; throw e }
    }
    try {
      const fd = openSync(to, 'r')
      try {
        const st = fstatSync(fd, { bigint: true })
        const size = Number(st.size)
        if (size > maxBytes) { unlinkSync(to); return undefined }
        // written whole before use (checked below): not zero-filled first
        const bytes = valueBuffer(size)
        let done = 0
        while (done < size) {
          const n = readSync(fd, bytes, done, size - done, done)
          if (n === 0) break
          done += n
        }
        if (done !== size) throw new BlockVerificationError(`shared block ${holder}/${key} is shorter than ${size} bytes`)
        verify(bytes)
        this.files.set(key, { ino: st.ino, size, mtimeNs: st.mtimeNs })
        return bytes
      } finally { closeSync(fd) }
    } catch (err) {
      try { unlinkSync(to) } catch {}
      throw err
    }
  }

  /** Reads a block this peer holds into `into` at `offset` (the whole value is assembled in place). */
  async readInto (key: string, into: Uint8Array, offset: number): Promise<number> {
    const att = this.files.get(key)
    if (att == null) throw new BlockVerificationError(`${key} is not in the shared store`)
    const fd = openSync(this.path(key), 'r')
    try {
      // the holder too checks the file is still the one it wrote: a planted or rewritten file is not served
      const st = fstatSync(fd, { bigint: true })
      if (st.ino !== att.ino || Number(st.size) !== att.size || st.mtimeNs !== att.mtimeNs) {
        throw new BlockVerificationError(`shared block ${key} was replaced or rewritten since it was written`)
      }
      // a large chunk of a larger value is read on libuv's thread pool, so the chunks of a value are read in
      // parallel (the cost is mostly page faults on the fresh destination buffer, which several cores take at
      // once); a small block, or a value's only block, synchronously (nothing to overlap with a thread hop)
      const parallel = att.size >= ASYNC_READ_BYTES && into.byteLength > att.size
      let done = 0
      while (done < att.size) {
        const n = parallel
          ? await readAsync(fd, into, offset + done, att.size - done, done)
          : readSync(fd, into, offset + done, att.size - done, done)
        if (n === 0) break
        done += n
      }
      if (done !== att.size) throw new BlockVerificationError(`shared block ${key} is shorter than ${att.size} bytes`)
      return done
    } finally { closeSync(fd) }
  }

  async read (key: string): Promise<Uint8Array> {
    const att = this.files.get(key)
    if (att == null) throw new BlockVerificationError(`${key} is not in the shared store`)
    const out = new Uint8Array(att.size)
    await this.readInto(key, out, 0)
    return out
  }

  /** Reads the first byte of a block (to tell a chunked root from a value without reading it). */
  async firstByte (key: string): Promise<number> {
    const b = new Uint8Array(1)
    const fd = openSync(this.path(key), 'r')
    try { readSync(fd, b, 0, 1, 0) } finally { closeSync(fd) }
    return b[0]
  }

  async delete (key: string): Promise<void> {
    if (!this.files.delete(key)) return
    try { unlinkSync(this.path(key)) } catch {}
  }

  /** Removes this peer's directory (what other peers linked stays theirs). */
  async close (): Promise<void> {
    this.files.clear()
    await rm(this.dir, { recursive: true, force: true })
  }

  /** Directories of peers whose process is gone (killed before stop) are removed. */
  private async reclaimDead (log?: (fmt: string, ...args: unknown[]) => void): Promise<void> {
    for (const name of await readdir(this.nsDir).catch(() => [])) {
      if (name === 'secret' || name.startsWith('.')) continue
      const pid = Number(await readFile(join(this.nsDir, name, 'pid'), 'utf8').catch(() => 'NaN'))
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) continue
      // no pid yet (or an empty file, read between its creation and the write): a peer may be starting right now
      // (it writes the pid just after creating the directory)
      if (!Number.isInteger(pid) || pid <= 0) {
        const st = await lstat(join(this.nsDir, name)).catch(() => undefined)
        if (st == null || Date.now() - st.mtimeMs < 60_000) continue
      }
      log?.('removing shared store directory %s of a stopped peer', name)
      await rm(join(this.nsDir, name), { recursive: true, force: true }).catch(() => {})
    }
  }
}

/**
 * Namespaces of other networks that no peer has used for 10 minutes (nothing but their secret left, e.g. a
 * test's throwaway private network) are removed; the age keeps a peer that is just starting there safe.
 */
async function reclaimNamespaces (base: string, keep: string): Promise<void> {
  for (const name of await readdir(base).catch(() => [])) {
    const dir = join(base, name)
    if (dir === keep) continue
    const entries = await readdir(dir).catch(() => undefined)
    if (entries == null || entries.some(e => e !== 'secret')) continue
    const st = await lstat(dir).catch(() => undefined)
    if (st == null || !st.isDirectory() || Date.now() - st.mtimeMs < 600_000) continue
    await rm(dir, { recursive: true, force: true }).catch(() => {})
  }
}

function netNamespace (): string {
  try { return readlinkSync('/proc/self/ns/net') } catch { return '' }
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** The namespace's secret, created once atomically (write a temp file, link it into place). */
async function loadSecret (nsDir: string): Promise<Uint8Array> {
  const path = join(nsDir, 'secret')
  const tmp = join(nsDir, `.secret-${randomBytes(8).toString('hex')}`)
  await writeFile(tmp, randomBytes(SECRET_BYTES), { mode: 0o600, flag: 'wx' })
  try { await link(tmp, path) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err } finally { await unlink(tmp).catch(() => {}) }
  const st = await lstat(path)
  if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) throw new Error(`${path} is not a private file of this user`)
  const secret = await readFile(path)
  if (secret.byteLength !== SECRET_BYTES) throw new Error(`${path} holds ${secret.byteLength} bytes, not ${SECRET_BYTES}`)
  return new Uint8Array(secret)
}
