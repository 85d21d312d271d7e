/**
 * Holds on warm instances: a holder (a request) that pre-warmed `count` instances of a spec wants up to that many
 * kept, whatever `idleMs` says, until it lets go. The pool asks `want(key)` before it retires an idle instance.
 */
export class InstanceHolds {
  /** instance key -> holder -> count */
  private readonly byKey = new Map<string, Map<string, number>>()

  /** The holder wants `count` instances of the key (a later, larger count raises it; a smaller one keeps the larger). */
  add (key: string, holder: string, count: number): void {
    if (count <= 0) return
    const h = this.byKey.get(key) ?? new Map<string, number>()
    h.set(holder, Math.max(count, h.get(holder) ?? 0))
    this.byKey.set(key, h)
  }

  /** The holder lets go of everything; answers the keys it held. */
  release (holder: string): string[] {
    const keys: string[] = []
    for (const [key, h] of this.byKey) {
      if (!h.delete(holder)) continue
      if (h.size === 0) this.byKey.delete(key)
      keys.push(key)
    }
    return keys
  }

  /** How many instances of the key all holders together want kept. */
  want (key: string): number {
    let n = 0
    for (const c of this.byKey.get(key)?.values() ?? []) n += c
    return n
  }

  clear (): void { this.byKey.clear() }
}
