import type { IncomingMessage, ServerResponse } from 'node:http'

/** Thrown by a handler to answer `{"error": {"status", "message"}}` with that status. */
export class HttpError extends Error {
  static readonly NAME = 'HttpError'
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.name = HttpError.NAME
    this.status = status
  }
}

export interface ApiRequest {
  method: string
  url: URL
  /** path parameters (`/v1/blocks/:cid` -> { cid }) */
  params: Record<string, string>
  /** the body, bounded by the server's body limit (413 beyond) */
  body: () => Promise<Uint8Array>
  /** the body parsed as JSON (400 with the parser's message when it is not JSON) */
  json: () => Promise<unknown>
  raw: IncomingMessage
}

/**
 * A handler returns a value to answer it as JSON with status 200, or `undefined` after writing the response
 * itself through `res` (streams, raw bytes, server-sent events).
 */
export type ApiHandler = (req: ApiRequest, res: ServerResponse) => Promise<unknown>

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** e.g. '/v1/requests/:id/events' */
  path: string
  handler: ApiHandler
}
