/** Lists kept per key (instances by instance key): a key's entry goes when its list is empty. */

export function listOf<K, V> (m: Map<K, V[]>, k: K): V[] {
  let l = m.get(k)
  if (l === undefined) { l = []; m.set(k, l) }
  return l
}

/** Removes `v` from `k`'s list; false when it was not there. */
export function remove<K, V> (m: Map<K, V[]>, k: K, v: V): boolean {
  const l = m.get(k)
  const i = l?.indexOf(v) ?? -1
  if (l === undefined || i < 0) return false
  l.splice(i, 1)
  if (l.length === 0) m.delete(k)
  return true
}
