// Process isolation: the instance runs in a child process of the peer, under Node's permission model (it may read
// this file, instance-runtime.mjs and its own module, nothing else; no child processes, no workers). Messages go
// over the IPC channel (serialization 'advanced', so Uint8Array values survive), in the same format as a worker's.
import { startInstance, uncaughtMessage } from './instance-runtime.mjs'

/** argv[2]: {file, sha256} of the module, as JSON; or {cell: true}: a stem cell, told its module by a `load` message */
const arg = JSON.parse(process.argv[2])

// The peer is gone (exited, crashed or SIGKILLed): its IPC channel closes, and the instance must go with it. A busy
// loop in user code would keep this handler from running; the host's setpriv --pdeathsig KILL covers that case.
process.on('disconnect', () => { process.exit(70) })

let crashing = false
function crash (err) {
  if (crashing) return
  crashing = true
  const message = uncaughtMessage(err)
  // the host reads this from the IPC channel; if the channel is gone there is nobody to tell
  const exit = () => { process.exit(1) }
  try {
    process.send({ type: 'crash', message }, exit)
  } catch {
    exit()
  }
  setTimeout(exit, 1000).unref()
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

// after a disconnect the process is exiting; a send then would only raise ERR_IPC_CHANNEL_CLOSED
const send = (msg) => { if (process.connected) process.send(msg) }
const start = async (code) => { await startInstance({ send, listen: (handler) => { process.on('message', handler) }, code }) }

if (arg.cell === true) {
  // booted ahead (stem-cells.ts): the host places the module in the one directory this process may read, then
  // names it; from then on this is an instance like any other
  const onLoad = (msg) => {
    if (msg === null || typeof msg !== 'object' || msg.type !== 'load') return
    process.off('message', onLoad)
    void start(msg.code)
  }
  process.on('message', onLoad)
  send({ type: 'cell-ready' })
} else {
  await start(arg)
}
