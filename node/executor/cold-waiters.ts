import type { Instance } from './instance.ts'
import { listOf, remove } from './key-lists.ts'

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
    listOf(this.waiting, key).push(take)
    return {
      offered: promise,
      end: (used) => {
        remove(this.waiting, key, take)
        if (offered === undefined) return undefined
        this.promised.delete(offered)
        return offered === used ? undefined : offered
      }
    }
  }

  /** Offers an instance that has just come idle to the earliest waiter of its key; false when nobody waits. */
  offer (inst: Instance): boolean {
    if (this.promised.has(inst)) return true
    const take = this.waiting.get(inst.key)?.[0]
    if (take === undefined) return false
    remove(this.waiting, inst.key, take)
    this.promised.add(inst)
    take(inst)
    return true
  }

  clear (): void {
    this.waiting.clear()
    this.promised.clear()
  }
}
