import '../util/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { dflowLogger } from '../util/log.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { LocalBus } from '../dscheduler/bus.ts'
import { BundleLoader } from '../dscheduler/loader.ts'
import { DScheduler } from '../dscheduler/scheduler.ts'
import type { InputValue, RequestView } from '../dscheduler/types.ts'
import { DStoreService } from '../dstore/dstore.ts'
import { WorkerPool } from '../executor/pool.ts'
import { loadWorkflow } from '../workflow/index.ts'
import type { ComponentLogger } from '@libp2p/interface'
import type { RequestMode } from '../../protocols/events/index.ts'

export interface EmbeddedPeerOptions {
  /** @default 4 */
  slots?: number
  logger?: ComponentLogger
}

/**
 * One peer with no network: the same DScheduler, DStore and worker pool a networked peer runs, joined by a
 * bus that loops events back. `dflow run` and the single-peer tests use it.
 */
export class EmbeddedPeer {
  readonly store: DStoreService
  readonly pool: WorkerPool
  readonly loader: BundleLoader
  readonly scheduler: DScheduler
  private readonly bus = new LocalBus()

  private constructor (readonly self: string, opts: EmbeddedPeerOptions) {
    const logger = opts.logger ?? dflowLogger()
    this.store = new DStoreService({ logger })
    this.pool = new WorkerPool({ slots: opts.slots ?? 4, logger })
    this.loader = new BundleLoader(this.store)
    this.scheduler = new DScheduler({
      self,
      bus: this.bus,
      store: this.store,
      pool: this.pool,
      loader: this.loader,
      membership: { live: () => [self], isLive: p => p === self, incarnation: Date.now(), incarnationOf: () => undefined, lastHeard: () => Date.now() },
      logger
    }, { slots: opts.slots ?? 4 })
  }

  static async create (opts: EmbeddedPeerOptions = {}): Promise<EmbeddedPeer> {
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const peer = new EmbeddedPeer(self, opts)
    await peer.store.start()
    await peer.bus.start()
    await peer.scheduler.start()
    return peer
  }

  /** Load a workflow file, run one request to the end, answer its final view. */
  async run (path: string, inputs: Record<string, InputValue>, opts: { mode?: RequestMode, requestId?: string } = {}): Promise<RequestView> {
    const file = await loadWorkflow(path)
    const workflow = await this.loader.register(file)
    const id = await this.scheduler.submit({ workflow, inputs, mode: opts.mode, requestId: opts.requestId })
    await this.scheduler.waitFinished(id)
    const view = await this.scheduler.view(id)
    if (view === undefined) throw new Error(`request ${id} vanished`)
    return view
  }

  async stop (): Promise<void> {
    await this.scheduler.stop()
    await this.bus.stop()
    await this.pool.stop()
    await this.store.stop()
  }
}
