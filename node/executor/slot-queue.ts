import { StepCancelledError, type StepLocation } from './errors.ts'
import type { Instance } from './instance.ts'

/** A busy instance a waiting invocation was queued behind, and the invocation running there then. */
export interface Behind { inst: Instance, after: number }

interface Waiter {
  /** undefined: the slot is this waiter's; else it waits in that instance (the pool's runAfter) */
  resolve: (behind?: Behind) => void
  reject: (err: Error) => void
  /** InvokeOptions.startBy (Infinity without): the queue is kept in this order, FIFO among equal */
  startBy: number
  /** the instance key, when the invocation may wait in a busy instance (InvokeOptions.queueInInstance) */
  key?: string
}

export interface SlotQueueHooks {
  /** a waiter joined the queue (followers that would overtake it go back) */
  queued: () => void
  /** a slot came free and nobody waited for it in the queue */
  freed: () => void
  /** a busy instance of the key with nobody queued behind it, reserved for the waiter it is given to */
  behind: (key: string) => Behind | undefined
}

/**
 * The pool's slots: at most `slots` invocations run at once; the others wait, earliest startBy first, FIFO among
 * equal ones. A freed slot passes straight to the next waiter, so a newcomer cannot overtake the queue. A waiter
 * that may wait in a busy instance of its module does so once it is the queue's head (`placeHead`).
 */
export class SlotQueue {
  private running = 0
  private readonly waiters: Waiter[] = []

  constructor (private readonly slots: number, private readonly hooks: SlotQueueHooks) {}

  get length (): number {
    return this.waiters.length
  }

  /** A slot, or (with a `key`) a busy instance of that key to wait in, whichever this waiter gets first. */
  async acquire (signal: AbortSignal | undefined, loc: StepLocation, startBy = Infinity, key?: string): Promise<Behind | undefined> {
    if (this.running < this.slots && this.waiters.length === 0) { this.running++; return undefined }
    if (signal?.aborted === true) throw new StepCancelledError(loc, 'cancelled while waiting for a slot')
    return await new Promise<Behind | undefined>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new StepCancelledError(loc, 'cancelled while waiting for a slot'))
      }
      const w: Waiter = {
        resolve: (behind) => { signal?.removeEventListener('abort', onAbort); resolve(behind) },
        reject: (err) => { signal?.removeEventListener('abort', onAbort); reject(err) },
        startBy: Number.isFinite(startBy) ? startBy : Infinity,
        key
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      // behind every waiter due no later than this one (a short queue: at most the request's width)
      let at = this.waiters.length
      while (at > 0 && this.waiters[at - 1].startBy > w.startBy) at--
      this.waiters.splice(at, 0, w)
      this.hooks.queued()
      this.placeHead()
    })
  }

  release (): void {
    const next = this.waiters.shift()
    if (next !== undefined) next.resolve()
    else {
      this.running--
      this.hooks.freed()
    }
  }

  /**
   * The queue's head waits in a busy instance of its module that has nobody queued yet, if there is one (then the
   * next head, and so on): it starts there the moment the running invocation returns, on its slot. Only heads
   * do, so the order holds.
   */
  placeHead (): void {
    while (this.waiters.length > 0) {
      const head = this.waiters[0]
      if (head.key === undefined) return
      const behind = this.hooks.behind(head.key)
      if (behind === undefined) return
      this.waiters.shift()
      head.resolve(behind)
    }
  }

  rejectAll (err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err)
  }
}
