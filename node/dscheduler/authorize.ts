import { cancelPayload, claimOf, signerOf, submitPayload, verifySigned } from '../auth/signing.ts'
import type { RequestCancelled, RequestStarted } from '../../protocols/events/index.ts'

/** A request or a cancel whose signer may not say it (or whose signature does not verify). */
export class NotAuthorizedError extends Error {
  static readonly NAME = 'NotAuthorizedError'
  /** forged: the signature does not verify (its sender is at fault); unauthorized: a policy of this peer */
  readonly kind: 'forged' | 'unauthorized'
  constructor (message: string, kind: 'forged' | 'unauthorized' = 'unauthorized') {
    super(message)
    this.name = NotAuthorizedError.NAME
    this.kind = kind
  }
}

export interface AuthorizePolicy {
  /** ids from --authorized-submitters */
  authorized: ReadonlySet<string>
  /** peers of the private network are authorized by default */
  isNetworkPeer: (id: string) => boolean
}

/**
 * Throws NotAuthorizedError unless the request may run here: a signed request must verify against its own
 * fields (id, workflow CID, input CIDs, mode, store, deadline) and its signer must be an authorized identity
 * or a peer of the network; an unsigned one must come from a peer of the network (its `from` is checked
 * against the gossip signer or the submit-protocol connection before this is called). Runs before any of the
 * request's code is fetched.
 */
export function authorizeRequest (started: RequestStarted, policy: AuthorizePolicy): void {
  if (started.auth === undefined) {
    if (!policy.isNetworkPeer(started.from)) throw new NotAuthorizedError(`request ${started.request} is not authorized: unsigned, and ${started.from} is not a peer of this network`)
    return
  }
  let signer: string
  try {
    signer = verifySigned(started.auth, ts => submitPayload(claimOf(started), ts))
  } catch (err) {
    throw new NotAuthorizedError(`request ${started.request} is not authorized: ${(err as Error).message}`, 'forged')
  }
  if (!policy.authorized.has(signer) && !policy.isNetworkPeer(signer)) {
    throw new NotAuthorizedError(`request ${started.request} is not authorized: submitter ${signer} is not an authorized submitter of this peer (--authorized-submitters)`)
  }
}

/** Who submitted a request: the signing client, or the peer that started it unsigned. */
export function submitterOf (started: Pick<RequestStarted, 'auth' | 'from'>): string {
  return started.auth === undefined ? started.from : signerOf(started.auth)
}

/**
 * A cancel must be signed by the request's submitter or an authorized identity; an unsigned one is accepted
 * only from the peer that started an unsigned request itself.
 */
export function authorizeCancel (cancel: RequestCancelled, started: Pick<RequestStarted, 'auth' | 'from'>, policy: Pick<AuthorizePolicy, 'authorized'>): void {
  const submitter = submitterOf(started)
  if (cancel.auth === undefined) {
    if (started.auth === undefined && cancel.from === started.from) return
    throw new NotAuthorizedError(`cancel of ${cancel.request} from ${cancel.from} is not authorized: unsigned, and not from its submitter`, 'forged')
  }
  let signer: string
  try {
    signer = verifySigned(cancel.auth, ts => cancelPayload(cancel.request, ts))
  } catch (err) {
    throw new NotAuthorizedError(`cancel of ${cancel.request} is not authorized: ${(err as Error).message}`, 'forged')
  }
  if (signer !== submitter && !policy.authorized.has(signer)) {
    throw new NotAuthorizedError(`cancel of ${cancel.request} is not authorized: ${signer} is neither its submitter nor an authorized identity`)
  }
}
