// Thread isolation: the instance runs in a worker_thread of the peer; messages go over the worker's MessagePort.
import { parentPort, workerData } from 'node:worker_threads'
import { startInstance } from './instance-runtime.mjs'

await startInstance({
  send: (msg) => { parentPort.postMessage(msg) },
  listen: (handler) => { parentPort.on('message', handler) },
  code: workerData
})
