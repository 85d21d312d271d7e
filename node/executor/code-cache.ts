import { createHash, randomBytes } from 'node:crypto'
import { chmod, lstat, mkdir, mkdtemp, open, readFile, rename, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FunctionCode } from './types.ts'

/** Where an instance loads its module from: a file named by the sha256 of the code, and that hash to check. */
export interface CodeFile {
  file: string
  sha256: string
}

export class CodeCacheError extends Error {
  static readonly NAME = 'CodeCacheError'
  constructor (message: string) {
    super(message)
    this.name = CodeCacheError.NAME
  }
}

/**
 * The per-peer cache of function modules on disk, for import(): a 0700 directory (DATA/code, or a private temp
 * directory for a peer without a data dir), files named by the sha256 of their code. A file is written under a
 * temporary name, fsynced and renamed into place, so no reader ever sees a half-written module, and is never
 * rewritten in place; the instance hashes what it reads before importing it (instance-runtime.mjs).
 */
export class CodeCache {
  private dir?: string
  private ready?: Promise<string>
  private readonly files = new Map<string, Promise<CodeFile>>()

  /** `dir` undefined: a fresh private directory under os.tmpdir(), removed by close() */
  constructor (private readonly wanted?: string) {}

  /** The directory, created 0700 (and made 0700 if it existed); refused if it is a symlink or not ours. */
  async directory (): Promise<string> {
    this.ready ??= this.prepare()
    return await this.ready
  }

  /** The file of this code, written if it is not there (or is not what its name says). */
  async file (code: FunctionCode): Promise<CodeFile> {
    const sha256 = createHash('sha256').update(code.code).digest('hex')
    let p = this.files.get(sha256)
    if (p === undefined) {
      p = this.write(sha256, code.code)
      this.files.set(sha256, p)
      p.catch(() => { this.files.delete(sha256) })
    }
    return await p
  }

  /** Removes a temporary directory (a data-dir cache stays: the next start finds its modules there). */
  async close (): Promise<void> {
    if (this.wanted === undefined && this.dir !== undefined) await rm(this.dir, { recursive: true, force: true })
    this.files.clear()
  }

  private async prepare (): Promise<string> {
    let dir: string
    if (this.wanted === undefined) {
      dir = await mkdtemp(join(tmpdir(), 'dflow-code-'))
    } else {
      dir = this.wanted
      await mkdir(dir, { recursive: true, mode: 0o700 })
    }
    const st = await lstat(dir)
    if (!st.isDirectory()) throw new CodeCacheError(`code cache ${dir} is not a directory (a symlink?)`)
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new CodeCacheError(`code cache ${dir} belongs to uid ${st.uid}, not to this peer's uid ${process.getuid()}`)
    }
    if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700)
    this.dir = dir
    return dir
  }

  private async write (sha256: string, code: string): Promise<CodeFile> {
    const dir = await this.directory()
    const file = join(dir, `${sha256}.mjs`)
    const existing = await readFile(file).catch(() => undefined)
    if (existing !== undefined && createHash('sha256').update(existing).digest('hex') === sha256) return { file, sha256 }
    const tmp = join(dir, `.${sha256}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    const fh = await open(tmp, 'wx', 0o400)
    try {
      await fh.writeFile(code)
      await fh.sync()
    } finally {
      await fh.close()
    }
    try {
      await rename(tmp, file)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw new CodeCacheError(`cannot place module ${file}: ${(err as Error).message}`)
    }
    return { file, sha256 }
  }
}
