import * as dagCbor from '@ipld/dag-cbor'
import type { SubmitAnswer, SubmitMessage } from './index.ts'

/**
 * A submit message or answer that does not follow the protocol. Every decode below either answers a checked
 * value or throws this (the fuzz tests in test/fuzz hold it to that); a new op or field gets its check here.
 */
export class SubmitMessageError extends Error {
  static readonly NAME = 'SubmitMessageError'
  constructor (message: string) {
    super(message)
    this.name = SubmitMessageError.NAME
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const MAX_TEXT = 64 * 1024

const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TEXT

function decodeCbor (bytes: Uint8Array, what: string): unknown {
  try {
    return dagCbor.decode<unknown>(bytes)
  } catch (err) {
    throw new SubmitMessageError(`${what} is not dag-cbor: ${(err as Error).message}`)
  }
}

/** Why a decoded message is malformed, or undefined. */
function messageProblem (m: Record<string, unknown>): string | undefined {
  if (m.op === 'status' || m.op === 'logs') return typeof m.requestId === 'string' && REQUEST_ID.test(m.requestId) ? undefined : 'bad requestId'
  if (m.op === 'announce') return m.event instanceof Uint8Array ? undefined : 'event must be bytes'
  if (m.op !== 'submit') return `unknown op ${JSON.stringify(String(m.op)).slice(0, 100)}`
  if (typeof m.workflow !== 'string' || m.workflow.length > 1024) return 'workflow must be a CID string'
  if (!isMap(m.inputs)) return 'inputs must be a map'
  if (m.requestId !== undefined && (typeof m.requestId !== 'string' || !REQUEST_ID.test(m.requestId))) return 'bad requestId'
  if (m.mode !== undefined && m.mode !== 'dataflow' && m.mode !== 'control') return 'mode must be dataflow or control'
  if (m.store !== undefined && m.store !== 'distributed' && m.store !== 'central') return 'store must be distributed or central'
  if (m.deadlineMs !== undefined && !(Number.isSafeInteger(m.deadlineMs) && (m.deadlineMs as number) > 0)) return 'deadlineMs must be a positive integer'
  return undefined
}

export function encodeSubmitMessage (msg: SubmitMessage): Uint8Array {
  return dagCbor.encode(msg)
}

/** A request from another peer; its inputs are checked as values by the scheduler when it stores them. */
export function decodeSubmitMessage (bytes: Uint8Array): SubmitMessage {
  const m = decodeCbor(bytes, 'message')
  if (!isMap(m)) throw new SubmitMessageError('message is not a map')
  const problem = messageProblem(m)
  if (problem !== undefined) throw new SubmitMessageError(problem)
  return m as unknown as SubmitMessage
}

/** Answers carry JSON values only; a JSON round trip drops undefined fields dag-cbor would refuse. */
export function encodeSubmitAnswer (answer: SubmitAnswer): Uint8Array {
  return dagCbor.encode(JSON.parse(JSON.stringify(answer)))
}

const STATUSES = new Set(['ok', 'not_found', 'bad_request', 'error'])
const VIEW_STATUSES = new Set(['running', 'ok', 'failed'])

function logLineProblem (l: unknown, i: number): string | undefined {
  if (!isMap(l)) return `logs[${i}] is not a map`
  const okIndex = l.index === null || (Number.isSafeInteger(l.index) && (l.index as number) >= 0)
  if (!isText(l.step) || !okIndex || !isText(l.peer) || !isText(l.line) || typeof l.ts !== 'number' || !Number.isFinite(l.ts)) {
    return `logs[${i}] must be { step, index, peer, line, ts }`
  }
  return undefined
}

/** An answer from another peer: its status and the shape of what an ok answer carries. */
export function decodeSubmitAnswer (bytes: Uint8Array): SubmitAnswer {
  const a = decodeCbor(bytes, 'answer')
  if (!isMap(a)) throw new SubmitMessageError('answer is not a map')
  if (typeof a.status !== 'string' || !STATUSES.has(a.status)) throw new SubmitMessageError(`answer status ${JSON.stringify(String(a.status)).slice(0, 100)} is unknown`)
  if (a.status !== 'ok') {
    if (!isText(a.message)) throw new SubmitMessageError(`a ${a.status} answer needs a message`)
    return { status: a.status as 'not_found' | 'bad_request' | 'error', message: a.message }
  }
  if (a.requestId !== undefined && (typeof a.requestId !== 'string' || !REQUEST_ID.test(a.requestId))) throw new SubmitMessageError('answer requestId is malformed')
  if (a.view !== undefined) {
    const v = a.view
    if (!isMap(v) || typeof v.requestId !== 'string' || typeof v.workflow !== 'string' || typeof v.status !== 'string' ||
      !VIEW_STATUSES.has(v.status) || !Array.isArray(v.steps) || !isMap(v.outputs)) {
      throw new SubmitMessageError('answer view must be a request view { requestId, workflow, status, outputs, steps, ... }')
    }
  }
  if (a.logs !== undefined) {
    if (!Array.isArray(a.logs)) throw new SubmitMessageError('answer logs must be a list')
    for (let i = 0; i < a.logs.length; i++) {
      const problem = logLineProblem(a.logs[i], i)
      if (problem !== undefined) throw new SubmitMessageError(`answer ${problem}`)
    }
  }
  return a as SubmitAnswer
}
