/**
 * Readiness events: what every peer learns about every request, over gossipsub (topic EVENTS_TOPIC).
 * Wire form: dag-cbor `{ v: 1, type, ... }`; see docs/protocols.md. Small values travel inline.
 */

/** Where a value can be had: its CID, its encoded size, peers holding it, and the bytes when small. */
export interface ValueRef {
  cid: string
  size: number
  holders: string[]
  /** the dag-cbor encoding, when size <= the inline limit */
  inline?: Uint8Array
  /** the element count when the value is a list (so a foreach knows its instances without fetching it) */
  length?: number
}

/**
 * A client's Ed25519 signature (see docs/protocols.md#signed-submissions): over the request (id, workflow CID,
 * input CIDs, mode, store, deadline, ts) in request-started, over (request id, ts) in request-cancelled.
 */
export interface SignedBy {
  /** the signer's public key, protobuf-encoded (its PeerId is the identity's public id) */
  key: Uint8Array
  sig: Uint8Array
  /** epoch ms at the signer */
  ts: number
}

export type RequestMode = 'dataflow' | 'control'
export type StoreMode = 'distributed' | 'central'

interface Base {
  /** the publishing peer (checked against the gossip signer) */
  from: string
  /** epoch ms at the publisher */
  ts: number
  request: string
}

export interface RequestStarted extends Base {
  type: 'request-started'
  workflow: string
  inputs: Record<string, ValueRef>
  mode: RequestMode
  store: StoreMode
  /** the peer the request was submitted to (the central store in `store: central`) */
  submitter: string
  deadlineMs?: number
  /** the submitting client's signature; absent when a peer of the network submitted on its own */
  auth?: SignedBy
}

export interface StepClaimed extends Base {
  type: 'step-claimed'
  step: string
  index: number | null
  /** bumped on takeover and re-run: the highest attempt wins, so a stale claim is recognisable */
  attempt: number
  /** the claimant's incarnation (process start); a claim from an earlier incarnation of a restarted peer is void */
  incarnation: number
  /** the claimant's function slots, so every peer can tell how busy it is */
  slots?: number
  /** which start of the request the claim follows (see Fence) */
  start?: string
  /**
   * more instances claimed in the same breath (one placement pass), with the same incarnation, slots, start and
   * time: one gossip message (one signature to make and to check on every peer) instead of one per instance
   */
  also?: Array<{ step: string, index: number | null, attempt: number }>
}

/**
 * Claims made by an instance's placer on behalf of the peers it chose (itself among them): the peer whose
 * result made the instances claimable decides where they run, once, for everyone, so peers with slightly
 * different views never claim the same instance. Each entry counts as a claim by `peer` at this event's `ts`.
 */
export interface StepsAssigned extends Base {
  type: 'steps-assigned'
  /** the placer's function slots */
  slots?: number
  start?: string
  claims: Array<{ step: string, index: number | null, attempt: number, peer: string, incarnation: number }>
}

/**
 * The claim a runner's event comes from. Every peer accepts an output, element, done or failure of an instance
 * only from the claim that currently wins it (the claimant is the event's `from`): a duplicate or superseded
 * run cannot change what consumers see, nor fail the request.
 */
export interface Fence {
  attempt: number
  incarnation: number
  /**
   * which start of the request the run follows (a digest of its request-started event): should one request id
   * be started twice, results of the start that lost never count for the one that won
   */
  start?: string
}

export interface OutputReady extends Base, Fence {
  type: 'output-ready'
  step: string
  index: number | null
  output: string
  value: ValueRef
}

export interface ElementPosted extends Base, Fence {
  type: 'element-posted'
  step: string
  index: number | null
  output: string
  element: number
  value: ValueRef
}

export interface StepDone extends Base, Fence {
  type: 'step-done'
  step: string
  index: number | null
  /** stream outputs and their element counts (the streams are closed) */
  streams: Record<string, number>
  coldStartMs: number
  readyAt: number
  startAt: number
  endAt: number
  /**
   * value outputs posted as the function returned, announced with its done: one message (one signature to make
   * and check) instead of one per output and one more for the done; each counts as its output-ready would
   */
  outputs?: Record<string, ValueRef>
}

export interface StepFailed extends Base, Fence {
  type: 'step-failed'
  step: string
  index: number | null
  error: string
}

export interface RequestDone extends Base {
  type: 'request-done'
  status: 'ok' | 'failed'
  outputs: Record<string, ValueRef | null>
  error?: string
}

export interface RequestCancelled extends Base {
  type: 'request-cancelled'
  reason: string
  /** the cancelling client's signature: it must be the request's submitter or an authorized identity */
  auth?: SignedBy
}

/** A value no live peer holds any more: its producer is run again (lineage recompute). */
export interface ValueLost extends Base {
  type: 'value-lost'
  cid: string
}

export interface Heartbeat {
  type: 'heartbeat'
  from: string
  ts: number
  /** when this peer process started: a new incarnation voids the claims of the previous one */
  incarnation: number
  /** unfinished claims at the sender */
  load: number
}

export type RequestEvent = RequestStarted | StepClaimed | StepsAssigned | OutputReady | ElementPosted | StepDone | StepFailed | RequestDone | RequestCancelled | ValueLost
export type DflowEvent = RequestEvent | Heartbeat

export { EVENTS_TOPIC } from './constants.ts'
export { encodeEvent, decodeEvent, EventValidationError } from './codec.ts'
export { encodeEventBatch, decodeEventMessage, batchDigests, eventDigest, encodeRecipientTags, recipientTag, recipientTags, MAX_BATCH_EVENTS, MAX_BATCH_BYTES, BATCH_DIGEST_BYTES, type BatchProof, type MessageEvent } from './batch.ts'
export { MAX_COUNT, MAX_DEADLINE_MS } from './constants.ts'
