import { peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { encodeValue, type Value } from '../values/codec.ts'
import { stepFunction, workflowFromBundle, type LoadedWorkflow as LoadedFile, type WorkflowBundle } from '../workflow/index.ts'
import type { DStore } from '../dstore/types.ts'
import type { LoadedWorkflow, WorkflowLoader } from './types.ts'

const FETCH_TIMEOUT_MS = 30_000
/** Parsed bundles kept in memory (least recently used go first; the bytes stay in DStore). */
const MAX_CACHED_BUNDLES = 64
/** Bundles are pinned for the peer's lifetime: a workflow deployed hours ago must still run. */
const BUNDLE_PIN = 'bundles'

/**
 * Workflow bundles live in DStore under their CID. A peer fetches a bundle the first time a request names it,
 * verifies it against the CID and re-validates it, and only then runs any of its code.
 */
export class BundleLoader implements WorkflowLoader {
  private readonly cache = new Map<string, Promise<LoadedWorkflow>>()

  constructor (private readonly store: DStore) {}

  /** Keep a bundle this peer built itself (from a workflow file) in DStore, so other peers can fetch it. */
  async register (file: LoadedFile): Promise<string> {
    const put = await this.store.put(file.bundle as unknown as Value, { pin: BUNDLE_PIN })
    if (put.cid.toString() !== file.cid) throw new Error(`bundle stored as ${put.cid.toString()}, expected ${file.cid}`)
    this.remember(file.cid, Promise.resolve(this.wrap(file.cid, file.workflow, file.bundle)))
    return file.cid
  }

  /** Store a bundle received over the API (bytes as encoded); answers its CID after verifying it. */
  async add (bytes: Uint8Array): Promise<string> {
    const { workflow, bundle } = await workflowFromBundle(bytes)
    const put = await this.store.put(bundle as unknown as Value, { pin: BUNDLE_PIN })
    const cid = put.cid.toString()
    this.remember(cid, Promise.resolve(this.wrap(cid, workflow, bundle)))
    return cid
  }

  /** Whether this peer has the bundle loaded (or loading): added, registered, or fetched for a request. */
  has (cid: string): boolean { return this.cache.has(cid) }

  async load (cid: string, holders: string[], signal?: AbortSignal): Promise<LoadedWorkflow> {
    let p = this.cache.get(cid)
    if (p === undefined) {
      p = this.fetch(cid, holders, signal)
      p.catch(() => { this.cache.delete(cid) })
    } else this.cache.delete(cid)
    this.remember(cid, p)
    return p
  }

  private remember (cid: string, p: Promise<LoadedWorkflow>): void {
    this.cache.set(cid, p)
    if (this.cache.size > MAX_CACHED_BUNDLES) this.cache.delete(this.cache.keys().next().value as string)
  }

  private async fetch (cid: string, holders: string[], signal?: AbortSignal): Promise<LoadedWorkflow> {
    const value = await this.store.get(CID.parse(cid), {
      signal: signal ?? AbortSignal.timeout(FETCH_TIMEOUT_MS),
      pin: BUNDLE_PIN,
      holders: holders.flatMap(h => { try { return [peerIdFromString(h)] } catch { return [] } })
    })
    const { workflow, bundle } = await workflowFromBundle(encodeValue(value), cid)
    return this.wrap(cid, workflow, bundle)
  }

  private wrap (cid: string, workflow: LoadedFile['workflow'], bundle: WorkflowBundle): LoadedWorkflow {
    return {
      cid,
      workflow,
      functionOf: (step: string) => {
        const def = workflow.steps[step]
        if (def === undefined) throw new Error(`workflow ${workflow.name} has no step ${step}`)
        return stepFunction(bundle, def)
      }
    }
  }
}
