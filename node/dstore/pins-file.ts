import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Pins, PinsSnapshot } from './pins.ts'

const FILE = 'pins.json'
/** Changes are written at most this often (and at stop). */
const SAVE_DELAY_MS = 500

/**
 * Pins kept across restarts in `DATA/pins.json`: after a restart the results a peer retained stay protected for
 * their retention, and values pinned by requests become retained (their request ran in the old process; if it
 * lives on elsewhere, nothing here waits for it) instead of pinned for ever.
 */
export class PinsFile {
  private timer?: NodeJS.Timeout
  private saving: Promise<void> = Promise.resolve()

  constructor (private readonly dir: string, private readonly pins: Pins, private readonly retentionMs: number, private readonly log: (msg: string) => void) {}

  async load (): Promise<void> {
    let text: string
    try { text = await readFile(join(this.dir, FILE), 'utf8') } catch { return }
    try {
      this.pins.restore(JSON.parse(text) as PinsSnapshot, Date.now(), this.retentionMs)
    } catch (err) {
      this.log(`pins file unreadable, ignored: ${(err as Error).message}`)
    }
  }

  /** Something changed: write soon. */
  changed (): void {
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.save() }, SAVE_DELAY_MS)
    this.timer.unref()
  }

  async save (): Promise<void> {
    this.saving = this.saving.then(async () => {
      await mkdir(this.dir, { recursive: true })
      const file = join(this.dir, FILE)
      await writeFile(`${file}.tmp`, JSON.stringify(this.pins.snapshot()), { mode: 0o600 })
      await rename(`${file}.tmp`, file)
    }).catch(err => { this.log(`pins not saved: ${(err as Error).message}`) })
    await this.saving
  }

  async close (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    await this.save()
  }
}
