/**
 * Protection of values against eviction and collection. A value is protected while some request pins
 * it or its retention has not expired; protection is counted per block because chunks can be shared
 * between values. Blocks in transfer are held separately (`hold`), so a half-fetched value is never evicted.
 */
interface ValueState { blocks: string[], pins: Set<string>, until: number, counted: boolean }

/** What a peer keeps of its pins across a restart (pins-file.ts). */
export interface PinsSnapshot { values: Array<{ root: string, blocks: string[], pins: string[], until: number }> }

/** The pin that lasts the peer's lifetime (workflow bundles): it stays a pin across restarts. */
const LIFETIME_PIN = 'bundles'

export class Pins {
  private readonly values = new Map<string, ValueState>()
  private readonly byRequest = new Map<string, Set<string>>()
  private readonly blockRefs = new Map<string, number>()
  private readonly transient = new Map<string, number>()
  /** called after every change of protection (to persist it) */
  onChange?: () => void

  isProtected = (block: string): boolean => (this.blockRefs.get(block) ?? 0) > 0 || (this.transient.get(block) ?? 0) > 0

  /** Values pinned by at least one request. */
  get pinnedValues (): number {
    let n = 0
    for (const v of this.values.values()) if (v.pins.size > 0) n++
    return n
  }

  get retainedValues (): number {
    const now = Date.now()
    let n = 0
    for (const v of this.values.values()) if (v.pins.size === 0 && v.until > now) n++
    return n
  }

  pin (root: string, blocks: string[], request: string): void {
    const v = this.state(root, blocks)
    v.pins.add(request)
    let set = this.byRequest.get(request)
    if (set == null) { set = new Set(); this.byRequest.set(request, set) }
    set.add(root)
    this.update(v)
    this.onChange?.()
  }

  retain (root: string, blocks: string[], until: number): void {
    const v = this.state(root, blocks)
    v.until = Math.max(v.until, until)
    this.update(v)
    this.onChange?.()
  }

  /** Drops `request`'s pins; `keep` roots are retained until `until`. Returns the roots now unprotected. */
  unpinRequest (request: string, keep: Set<string>, until: number): string[] {
    const roots = this.byRequest.get(request) ?? new Set<string>()
    this.byRequest.delete(request)
    const freed: string[] = []
    for (const root of roots) {
      const v = this.values.get(root)
      if (v == null) continue
      v.pins.delete(request)
      if (keep.has(root)) v.until = Math.max(v.until, until)
      if (!this.update(v)) freed.push(root)
    }
    this.onChange?.()
    return freed
  }

  snapshot (): PinsSnapshot {
    const now = Date.now()
    const values: PinsSnapshot['values'] = []
    for (const [root, v] of this.values) if (v.pins.size > 0 || v.until > now) values.push({ root, blocks: v.blocks, pins: [...v.pins], until: v.until })
    return { values }
  }

  /** After a restart: lifetime pins stay, request pins become retention from now, expired retention is dropped. */
  restore (snap: PinsSnapshot, now: number, retentionMs: number): void {
    if (!Array.isArray(snap?.values)) throw new Error('pins snapshot has no values list')
    for (const e of snap.values) {
      if (typeof e?.root !== 'string' || !Array.isArray(e.blocks) || !e.blocks.every(b => typeof b === 'string')) continue
      const requests = Array.isArray(e.pins) ? e.pins.filter((p): p is string => typeof p === 'string') : []
      if (requests.includes(LIFETIME_PIN)) this.pin(e.root, e.blocks, LIFETIME_PIN)
      const until = Math.max(typeof e.until === 'number' ? e.until : 0, requests.some(r => r !== LIFETIME_PIN) ? now + retentionMs : 0)
      if (until > now) this.retain(e.root, e.blocks, until)
    }
  }

  /** Roots whose retention expired and that no request pins. */
  expired (now = Date.now()): string[] {
    const out: string[] = []
    for (const [root, v] of this.values) {
      if (v.pins.size === 0 && v.until <= now && v.until > 0) {
        v.until = 0
        if (!this.update(v)) out.push(root)
      }
    }
    return out
  }

  /** Protected roots (pinned or retained) and the requests pinning each. */
  protectedRoots (now = Date.now()): Array<{ root: string, requests: string[] }> {
    const out: Array<{ root: string, requests: string[] }> = []
    for (const [root, v] of this.values) if (v.pins.size > 0 || v.until > now) out.push({ root, requests: [...v.pins] })
    return out
  }

  blocksOf (root: string): string[] { return this.values.get(root)?.blocks ?? [] }

  requestsOf (root: string): string[] { return [...(this.values.get(root)?.pins ?? [])] }

  /** Forget an unprotected value's bookkeeping once its blocks are gone. */
  drop (root: string): void {
    const v = this.values.get(root)
    if (v != null && !v.counted) this.values.delete(root)
  }

  hold (blocks: string[]): () => void {
    for (const b of blocks) this.transient.set(b, (this.transient.get(b) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      for (const b of blocks) {
        const n = (this.transient.get(b) ?? 1) - 1
        if (n <= 0) this.transient.delete(b); else this.transient.set(b, n)
      }
    }
  }

  private state (root: string, blocks: string[]): ValueState {
    let v = this.values.get(root)
    if (v == null) { v = { blocks, pins: new Set(), until: 0, counted: false }; this.values.set(root, v) }
    return v
  }

  /** Keeps block refcounts in step with the value's protection; returns whether it is protected. */
  private update (v: ValueState): boolean {
    const protect = v.pins.size > 0 || v.until > Date.now()
    if (protect !== v.counted) {
      for (const b of v.blocks) {
        const n = (this.blockRefs.get(b) ?? 0) + (protect ? 1 : -1)
        if (n <= 0) this.blockRefs.delete(b); else this.blockRefs.set(b, n)
      }
      v.counted = protect
    }
    return protect
  }
}
