import { useEffect, useState } from 'preact/hooks'
import { getJson } from './api.ts'

export interface Polled<T> { data?: T, error?: string, at?: number }

/**
 * GET `path` now and every `everyMs` while the page is open (and visible): the peer only does the work
 * (asking other peers for their status, say) while someone looks.
 */
export function usePoll<T> (path: string | undefined, everyMs: number): Polled<T> {
  const [state, setState] = useState<Polled<T>>({})
  useEffect(() => {
    if (path === undefined) return
    let stopped = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const tick = async (): Promise<void> => {
      if (document.visibilityState !== 'hidden') {
        try {
          const data = await getJson<T>(path)
          if (!stopped) setState({ data, at: Date.now() })
        } catch (err) {
          if (!stopped) setState(s => ({ ...s, error: (err as Error).message }))
        }
      }
      if (!stopped) timer = setTimeout(() => { void tick() }, everyMs)
    }
    void tick()
    return () => { stopped = true; clearTimeout(timer) }
  }, [path, everyMs])
  return state
}
