import * as dagCbor from '@ipld/dag-cbor'
import { HttpError } from './types.ts'

/** A request body by its content type: dag-cbor for application/cbor, else JSON. 400 when it is neither. */
export function parseBody (bytes: Uint8Array, contentType: string | undefined): unknown {
  if (/^application\/cbor\b/i.test(contentType ?? '')) {
    try {
      return dagCbor.decode(bytes)
    } catch (err) {
      throw new HttpError(400, `request body is not dag-cbor: ${(err as Error).message}`)
    }
  }
  return parseJsonBody(bytes)
}

/**
 * A request body as JSON: 400 when it is not UTF-8 JSON. (Node's JSON.parse copes with any nesting; what reads
 * the result must bound its own recursion - see fromJsonValue.)
 */
export function parseJsonBody (bytes: Uint8Array): unknown {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new HttpError(400, 'request body is not UTF-8')
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`)
  }
}
