import type { Instance } from './instance.ts'

/** What an invocation waiting for a cold instance holds: the warm instance it may be offered instead. */
export interface ColdWait {
  /** resolves with an instance of the key that came idle while the cold one loaded */
  offered: Promise<Instance>
  /**
   * The wait is over (`used`: the instance the invocation runs on, or none when it failed). An instance offered
   * but not used (the cold one was ready first, or the invocation failed) is returned, to be made idle again.
   */
  end: (used: Instance | undefined) => Instance | undefined
}

/**
 * Invocations meeting a cold start, per instance key. A cold start is a process or isolate loading its module
 * (100-200 ms here), while a busy instance of the same module often returns a few ms later: the first instance of
 * the key that comes idle goes to the earliest waiter, which runs on it at once; the instance still loading
 * becomes idle when ready, for whoever comes next. (A bench trace of illgal_recognizer: a step met a 164 ms cold
 * start while its sibling's instance, on the same module, was returning; that one request was the p99.)
 */
export class ColdWaiters {
  private readonly waiting = new Map<string, Array<(inst: Instance) => void>>()
  /** instances offered to a waiter and not yet running or given back: not idle, not busy, not to be offered again */
  private readonly promised = new Set<Instance>()

  wait (key: string): ColdWait {
    const { promise, resolve } = Promise.withResolvers<Instance>()
    let offered: Instance | undefined
    const take = (inst: Instance): void => { offered = inst; resolve(inst) }
    let list = this.waiting.get(key)
    if (list === undefined) { list = []; this.waiting.set(key, list) }
    list.push(take)
    return {
      offered: promise,
      end: (used) => {
        this.drop(key, take)
        if (offered === undefined) return undefined
        this.promised.delete(offered)
        return offered === used ? undefined : offered
      }
    }
  }

  /** Offers an instance that has just come idle to the earliest waiter of its key; false when nobody waits. */
  offer (inst: Instance): boolean {
    if (this.promised.has(inst)) return true
    const take = this.waiting.get(inst.key)?.shift()
    if (take === undefined) return false
    if (this.waiting.get(inst.key)?.length === 0) this.waiting.delete(inst.key)
    this.promised.add(inst)
    take(inst)
    return true
  }

  /** whether the instance is promised to a waiter (it is neither idle nor free for anyone else) */
  has (inst: Instance): boolean {
    return this.promised.has(inst)
  }

  clear (): void {
    this.waiting.clear()
    this.promised.clear()
  }

  private drop (key: string, take: (inst: Instance) => void): void {
    const list = this.waiting.get(key)
    const i = list?.indexOf(take) ?? -1
    if (list === undefined || i < 0) return
    list.splice(i, 1)
    if (list.length === 0) this.waiting.delete(key)
  }
}
