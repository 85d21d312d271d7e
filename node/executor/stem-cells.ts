import { kill as killPid } from 'node:process'
import { copyFile, link, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Logger } from '@libp2p/interface'
import { cellChannel, type ChannelFailure, type ChannelHandlers, type InstanceChannel } from './channels.ts'
import type { CodeFile } from './code-cache.ts'

export interface StemCellsOptions {
  /** idle cells to keep per memory size in use, asked at each refill; 0 turns them off */
  target: () => number
  /** the peer's code cache directory: cells live in a subdirectory of it (same file system: modules are hard links) */
  directory: () => Promise<string>
  /** whether instances of the pool are still loading: a refill waits, so it never competes with a cold start */
  busy: () => boolean
  log: Logger
}

/** A booted cell handed to one instance: place its module, then adopt the channel under the instance's handlers. */
export interface TakenCell {
  /** hard-links (or copies) the module into the one directory the cell may read; the cell's view of it */
  place: (code: CodeFile) => Promise<CodeFile>
  /** the instance's channel from now on; the cell is told to load `code` (once it has booted) */
  adopt: (handlers: ChannelHandlers, code: CodeFile) => InstanceChannel
  /** not used after all (the instance was terminated first): the cell goes */
  discard: () => Promise<void>
}

interface Cell {
  memoryMb: number
  dir: string
  channel: InstanceChannel
  /** the process said cell-ready: booted and waiting */
  booted: boolean
  /** resolves when it said cell-ready, or ended */
  ready: Promise<void>
  /** set once an instance took the cell: its messages and its end go there */
  owner?: ChannelHandlers
  failure?: ChannelFailure
  /** the process ended before an instance adopted it */
  exited?: { code: number | null, signal: string | null }
}

/** memory sizes kept warm at once: a peer's steps mostly share one or two `memory:` values */
const MAX_SIZES = 2
/** cells in a row that die before booting, after which no more are started */
const FAILED_BOOTS = 3
/** how often a waiting refill looks whether the pool's instances have loaded */
const REFILL_POLL_MS = 100

/**
 * Stem cells (the name OpenWhisk gives its pre-warmed generic runtime containers): instance processes booted
 * before their module is known, so a cold start costs only the module's own load. Booting a Node process costs
 * 100-140 ms of CPU on this project's 2-core test machine, and dataflow starts a request's instances all at once:
 * 45 boots at once kept a root's instance waiting 3-4 s. A cell is started with the same sandbox as any instance
 * (permission model, memory cap), except that the one path it may read is its own empty directory; the host
 * links the module there when an instance takes the cell. A cell is never given back: once it loaded a module it
 * is that module's instance. Cells are kept per `memoryMb` (a process's heap cap is fixed at launch) for the
 * MAX_SIZES sizes used last, and refilled one at a time once no instance of the pool is loading.
 */
export class StemCells {
  private readonly idle = new Map<number, Cell[]>()
  /** memory sizes in use, most recent last */
  private readonly sizes: number[] = []
  private base?: Promise<string>
  private refilling = false
  /** cells in a row that exited before they booted: refills stop at FAILED_BOOTS (a sandbox that cannot start) */
  private failedBoots = 0
  private timer?: ReturnType<typeof setTimeout>
  private stopped = false
  /** cells booted since the pool was made */
  booted = 0
  /** instances started in a cell */
  taken = 0

  constructor (private readonly opts: StemCellsOptions) {}

  /** idle cells now (all sizes) */
  get size (): number {
    let n = 0
    for (const l of this.idle.values()) n += l.length
    return n
  }

  /** pids of the idle cells */
  pids (): number[] {
    return [...this.idle.values()].flat().flatMap(c => c.channel.pid === undefined ? [] : [c.channel.pid])
  }

  /** A cell for an instance of `memoryMb`, if one is idle; refills either way (this size is in use). */
  take (memoryMb: number): TakenCell | undefined {
    if (this.opts.target() <= 0 || this.stopped) return undefined
    this.use(memoryMb)
    const list = this.idle.get(memoryMb) ?? []
    // a booted one first; one still booting is further along than a fresh process
    const i = list.findIndex(c => c.booted)
    const cell = i >= 0 ? list.splice(i, 1)[0] : list.shift()
    // later, not now: the instance taking this cell (or starting without one) is about to load
    this.later()
    if (cell === undefined) return undefined
    this.taken++
    return {
      place: async code => await this.place(cell, code),
      adopt: (handlers, code) => {
        cell.owner = handlers
        // a message sent before the child listens would be lost: a cell still booting is told once it is ready
        void cell.ready.then(() => { cell.channel.post({ type: 'load', code }) })
        if (cell.failure !== undefined) handlers.failure(cell.failure)
        const exited = cell.exited
        // it died while its module was being placed: the instance learns it as from any process
        if (exited !== undefined) queueMicrotask(() => { handlers.exit(exited.code, exited.signal) })
        cell.channel.setRef(true)
        return cell.channel
      },
      discard: async () => {
        cell.owner = { message: () => {}, failure: () => {}, exit: () => {} }
        await cell.channel.kill()
      }
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    const idle = [...this.idle.values()].flat()
    this.idle.clear()
    await Promise.all(idle.map(async c => { await c.channel.kill() }))
    if (this.base !== undefined) await rm(await this.base.catch(() => ''), { recursive: true, force: true }).catch(() => {})
  }

  private use (memoryMb: number): void {
    const at = this.sizes.indexOf(memoryMb)
    if (at >= 0) this.sizes.splice(at, 1)
    this.sizes.push(memoryMb)
    while (this.sizes.length > MAX_SIZES) {
      const gone = this.sizes.shift() as number
      for (const c of this.idle.get(gone) ?? []) void c.channel.kill()
      this.idle.delete(gone)
    }
  }

  private async place (cell: Cell, code: CodeFile): Promise<CodeFile> {
    const file = join(cell.dir, basename(code.file))
    // a hard link shares the 0400 file the code cache wrote and hashed; the instance hashes what it reads anyway
    await link(code.file, file).catch(async () => { await copyFile(code.file, file) })
    return { file, sha256: code.sha256 }
  }

  /** Starts one cell at a time until every size in use has its target, waiting while instances load. */
  private refill (): void {
    if (this.refilling || this.stopped || this.failedBoots >= FAILED_BOOTS) return
    const target = this.opts.target()
    const memoryMb = this.sizes.find(m => (this.idle.get(m)?.length ?? 0) < target)
    if (memoryMb === undefined) return
    if (this.opts.busy()) { this.later(); return }
    this.refilling = true
    void this.boot(memoryMb).then(() => {
      this.refilling = false
      this.refill()
    }, err => {
      this.refilling = false
      this.opts.log.error('stem cell did not start: %s', (err as Error).message)
    })
  }

  private later (): void {
    if (this.timer !== undefined || this.stopped) return
    this.timer = setTimeout(() => { this.timer = undefined; this.refill() }, REFILL_POLL_MS)
    this.timer.unref()
  }

  private async boot (memoryMb: number): Promise<void> {
    const dir = await mkdtemp(join(await this.baseDir(), 'cell-'))
    if (this.stopped || !this.sizes.includes(memoryMb) || this.opts.busy()) {
      await rm(dir, { recursive: true, force: true })
      this.later()
      return
    }
    let booted!: () => void
    const ready = new Promise<void>(resolve => { booted = resolve })
    const cell: Cell = {
      memoryMb,
      dir,
      booted: false,
      ready,
      channel: cellChannel({
        dir,
        memoryMb,
        handlers: {
          message: msg => {
            if ((msg as { type?: string } | null)?.type === 'cell-ready') { cell.booted = true; this.failedBoots = 0; booted() }
            else cell.owner?.message(msg)
          },
          failure: f => { if (cell.owner !== undefined) cell.owner.failure(f); else cell.failure = f },
          exit: (code, signal) => {
            const list = this.idle.get(memoryMb)
            const i = list?.indexOf(cell) ?? -1
            if (i >= 0) list?.splice(i, 1)
            void rm(dir, { recursive: true, force: true }).catch(() => {})
            if (!cell.booted && cell.owner === undefined && !this.stopped && ++this.failedBoots >= FAILED_BOOTS) {
              this.opts.log.error('stem cells stopped: %d in a row exited before they booted (last: code %s, signal %s)', this.failedBoots, code, signal)
            }
            booted()
            if (cell.owner !== undefined) cell.owner.exit(code, signal)
            else cell.exited = { code, signal }
            if (cell.owner === undefined && !this.stopped) this.opts.log('idle stem cell exited (code %s, signal %s)', code, signal)
          }
        }
      })
    }
    // an idle cell must not keep the host alive, and is sampled for memory only now and then
    cell.channel.setRef(false)
    const list = this.idle.get(memoryMb) ?? []
    list.push(cell)
    this.idle.set(memoryMb, list)
    this.booted++
    await ready
  }

  /** `<code dir>/cells-<pid>`, created empty; directories of peers that are gone are removed on the way. */
  private async baseDir (): Promise<string> {
    this.base ??= (async () => {
      const codeDir = await this.opts.directory()
      for (const name of await readdir(codeDir).catch(() => [] as string[])) {
        const pid = /^cells-(\d+)$/.exec(name)?.[1]
        if (pid !== undefined && Number(pid) !== process.pid && !alive(Number(pid))) {
          await rm(join(codeDir, name), { recursive: true, force: true }).catch(() => {})
        }
      }
      const dir = join(codeDir, `cells-${process.pid}`)
      await rm(dir, { recursive: true, force: true })
      await mkdir(dir, { mode: 0o700 })
      return dir
    })()
    return await this.base
  }
}

function alive (pid: number): boolean {
  try {
    killPid(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
