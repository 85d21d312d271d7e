/**
 * glibc malloc settings for peer and instance processes (GLIBC_TUNABLES: glibc reads it at process start, so it
 * is given in the environment of the processes a peer or a testnet starts; elsewhere than glibc it does nothing).
 *
 * Why: values are large byte arrays, and every copy of one (an instance's output serialized, the peer's read of
 * the channel, the store's encoding, an input decoded in the instance) is a fresh allocation. glibc maps each
 * allocation over 128 KiB (its threshold grows with the largest freed one) and gives the pages back when it is
 * freed, so the next copy faults every 4 KiB page in again, and a first touch costs ~16 us per page in this
 * VM: 1.5 ms to fill a new 380 KB array, against 0.02 ms when its pages are already there. With malloc's heap
 * marked for transparent huge pages (`hugetlb=1`, where the kernel's THP mode is `madvise` or `always`), large
 * allocations served from that heap (`mmap_threshold`: up to 32 MiB) and its top kept up to 64 MiB
 * (`trim_threshold`; a peer at rest still hands free pages back through malloc_trim, node/util/malloc-trim.ts),
 * a copy lands in memory that is already mapped, or faults in 2 MiB at a time. FaaSFlow cycles on 4 peers
 * (`testnet/bench/micro/workflow-cost.ts`, alternated with and without): page faults on the machine per request
 * 14.6-15.3K -> 2.8-3.5K, instance CPU per request 282-298 -> 167-212 ms, p50 573-576 -> 470-535 ms.
 * `DFLOW_MALLOC_TUNABLES=0` leaves glibc's defaults (A/B runs).
 */
export const MALLOC_TUNABLES = 'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864'

/** The environment entry for a process this one starts: `{ GLIBC_TUNABLES }`, or nothing when turned off. */
export function mallocTunablesEnv (): Record<string, string> {
  return process.env.DFLOW_MALLOC_TUNABLES === '0' ? {} : { GLIBC_TUNABLES: MALLOC_TUNABLES }
}
