import { CID } from 'multiformats/cid'
import { HttpError, type Route } from '../api/types.ts'
import { assertValue, decodeValue, fromJsonValue, toJsonValue, type Value } from '../values/codec.ts'
import type { DStoreService } from './dstore.ts'
import type { TrafficMetrics } from '../metrics/traffic.ts'

function parseCid (s: string | undefined): CID {
  try {
    if (s == null) throw new Error('missing')
    return CID.parse(s)
  } catch {
    throw new HttpError(400, `invalid CID: ${s ?? ''}`)
  }
}

function fromCborValue (bytes: Uint8Array): Value {
  const value: unknown = decodeValue(bytes)
  assertValue(value, 'body')
  return value
}

/** HTTP routes of DStore and the traffic counters; mounted by the API server. */
export function storeRoutes (store: DStoreService, traffic?: TrafficMetrics): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/blocks',
      handler: async (req) => {
        const type = String(req.raw?.headers?.['content-type'] ?? '')
        let value: Value
        if (type.startsWith('application/json')) {
          try { value = fromJsonValue(await req.json()) } catch (err: any) {
            if (err instanceof HttpError) throw err
            throw new HttpError(400, err?.message ?? String(err))
          }
        } else {
          // application/cbor (the guard admits nothing else): the body is the value's dag-cbor encoding
          try { value = fromCborValue(await req.body()) } catch (err: any) {
            throw new HttpError(400, `the body is not a dag-cbor value: ${err?.message ?? String(err)}`)
          }
        }
        const { cid, size } = await store.put(value)
        return { cid: cid.toString(), size }
      }
    },
    {
      method: 'GET',
      path: '/v1/blocks/:cid',
      handler: async (req, res) => {
        const cid = parseCid(req.params.cid)
        if (!await store.has(cid)) throw new HttpError(404, `${cid} is not held by this peer`)
        const value = await store.get(cid)
        if (value instanceof Uint8Array) {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(value.byteLength) })
          res.end(value)
          return undefined
        }
        return toJsonValue(value)
      }
    },
    { method: 'GET', path: '/v1/store/stats', handler: async () => store.stats() },
    {
      method: 'GET',
      path: '/v1/metrics/traffic',
      handler: async () => traffic?.snapshot() ?? { total: { sent: 0, received: 0 }, peers: {}, protocols: {} }
    }
  ]
}
