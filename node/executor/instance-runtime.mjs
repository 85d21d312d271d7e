// The instance side of the executor: one instance = one loaded step module, running one invocation at a time.
// Shared by both isolations: worker-entry.mjs (a worker thread, messages over its MessagePort) and
// process-entry.mjs (a child process under Node's permission model, messages over the IPC channel with the
// 'advanced' (structured clone) serialization). One message format for both; the host side is instance.ts.
// Plain JavaScript on purpose: neither a worker nor a child inherits tsx's loader, and a clean one starts faster.
// Protocol (all messages carry the invocation id `inv` except ready/load-error/stray/crash):
//   host -> instance: invoke {inv, exportName, request, step, outputs, inputs?}, input-result {inv, req, ok, value|message},
//                     abort {inv, reason}, then {inv, next: {inv, exportName, request, step, outputs, inputs?, from}},
//                     unthen {inv} (inv: the follower's)
//   instance -> host: ready, load-error {message, stack}, input {inv, req, name}, output {inv, name, value},
//                     emit {inv, name, index, value}, log {inv, line}, done {inv, startedAt, endedAt, streams},
//                     fail {inv, kind: 'function'|'output'|'load', message, stack?, output?}, stray {line},
//                     crash {message} (process isolation only: an uncaught error, just before the process exits),
//                     chained {inv} (the follower starts now, right after its producer's done), unchained {inv},
//                     mid-run {inv} (the function posted outputs and had not returned at the end of that turn)
// A stem cell (process-entry.mjs, stem-cells.ts) first says cell-ready and waits for load {code: {file, sha256}};
// from then on it speaks this protocol like an instance started with its module.
// A `then` names the invocation to run in this instance as soon as the running one returns successfully, its
// inputs `from` the running one's value outputs (input name -> output name): a chain on one peer then skips the
// host's round trip. Every `then` is answered once, by `chained` or by `unchained` (the running one failed, was
// aborted, had returned already, lacked an output, or the host took the link back with `unthen`). A `then` with an
// empty `from` is an invocation that only waited for a slot (the pool's successors): it reads none of the outputs.
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { format } from 'node:util'

/** @type {(msg: object) => void} */
let post

class OutputRuleError extends Error {
  constructor (message, output) {
    super(message)
    this.name = 'OutputError'
    this.output = output
  }
}

/** Same rules as assertValue in node/values/codec.ts (kept in sync by the executor tests). */
function valueProblem (value, path) {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return undefined
  const at = path === '' ? 'value' : path
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${at} is ${value}, which is not a JSON number`
  if (value instanceof Uint8Array) return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = valueProblem(value[i], `${path}[${i}]`)
      if (p !== undefined) return p
    }
    return undefined
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value)
    if (proto === Object.prototype || proto === null) {
      for (const [k, v] of Object.entries(value)) {
        const p = valueProblem(v, path === '' ? k : `${path}.${k}`)
        if (p !== undefined) return p
      }
      return undefined
    }
  }
  const kind = value === undefined ? 'undefined' : typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value
  return `${at} is ${kind}; values must be JSON values, Uint8Array, or arrays/objects of them`
}

/**
 * The host wrote the code to a file named by its sha256 (tmp name, fsync, rename: see code-cache.ts) in a 0700
 * directory of the peer. The file is read and hashed before the import, so a file changed on disk is refused.
 */
async function loadModule ({ file, sha256 }) {
  const bytes = await readFile(file)
  const actual = createHash('sha256').update(bytes).digest('hex')
  if (actual !== sha256) throw new Error(`code file ${file} does not match its hash (expected ${sha256}, found ${actual})`)
  // bundles may carry inline source maps: user stacks then point into the original .ts files
  if (bytes.includes('sourceMappingURL=')) process.setSourceMapsEnabled(true)
  return await import(pathToFileURL(file).href)
}

let mod
let current // the running invocation's state

// All user output goes over the message port, so it stays in order with the outputs and the final 'done', and
// never reaches the peer's own stdout. (Worker stdio piping is not used: a worker with piped stdio keeps the host
// process alive even when unref'd.)
function logLine (line) {
  if (current !== undefined) post({ type: 'log', inv: current.inv, line })
  else post({ type: 'stray', line })
}
const partial = []
function captureOutput () {
  for (const [method, prefix] of [['log', ''], ['info', ''], ['debug', ''], ['warn', 'warn: '], ['error', 'error: ']]) {
    console[method] = (...args) => { logLine(prefix + format(...args)) }
  }
  for (const [stream, prefix] of [[process.stdout, ''], [process.stderr, 'stderr: ']]) {
    const p = { prefix, buf: '' }
    partial.push(p)
    stream.write = (chunk, encoding, cb) => {
      if (typeof encoding === 'function') cb = encoding
      p.buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      let nl
      while ((nl = p.buf.indexOf('\n')) >= 0) {
        logLine(prefix + p.buf.slice(0, nl))
        p.buf = p.buf.slice(nl + 1)
      }
      if (typeof cb === 'function') queueMicrotask(cb)
      return true
    }
  }
}

function flushPartial () {
  for (const p of partial) {
    if (p.buf !== '') logLine(p.prefix + p.buf)
    p.buf = ''
  }
}

const ENTRY_FILE = new URL(import.meta.url).pathname.split('/').pop()

/** The user's frames only: everything from this file's invoke() down is the executor's. */
function errorFields (err) {
  if (err instanceof Error) {
    const lines = typeof err.stack === 'string' ? err.stack.split('\n') : []
    const cut = lines.findIndex(l => /^\s+at /.test(l) && l.includes(ENTRY_FILE))
    return { message: err.message, stack: cut > 0 ? lines.slice(0, cut).join('\n') : err.stack }
  }
  return { message: format('%s', err), stack: undefined }
}

function makeContext (msg, state) {
  const { inv, outputs } = msg
  const declared = new Set(outputs)
  const label = msg.step.index === null ? msg.step.name : `${msg.step.name}[${msg.step.index}]`
  const violate = (text, output) => {
    const err = new OutputRuleError(`output ${JSON.stringify(output)}: ${text}`, output)
    // the first violation fails the step even if user code catches the throw
    state.violation ??= err
    throw err
  }
  const check = (name, value, what) => {
    if (state.returned) {
      post({ type: 'stray', line: `step ${label}: ${what}(${JSON.stringify(name)}) after the function returned was ignored` })
      return false
    }
    if (typeof name !== 'string') violate(`output name must be a string, got ${typeof name}`, String(name))
    if (!declared.has(name)) violate(`is not declared (declared: ${[...declared].join(', ') || 'none'})`, name)
    const problem = valueProblem(value, '')
    if (problem !== undefined) violate(problem, name)
    return true
  }
  // inputs the host already had at invoke time come with it: ctx.input answers them without a round trip
  const inputs = new Map(Object.entries(msg.inputs ?? {}).map(([name, value]) => [name, Promise.resolve(value)]))
  let req = 0
  return {
    request: Object.freeze({ ...msg.request }),
    step: Object.freeze({ ...msg.step }),
    signal: state.controller.signal,
    input (name) {
      if (state.returned) return Promise.reject(new Error(`step ${label}: ctx.input after the function returned`))
      let p = inputs.get(name)
      if (p === undefined) {
        const id = ++req
        p = new Promise((resolve, reject) => { state.pending.set(id, { resolve, reject }) })
        inputs.set(name, p)
        post({ type: 'input', inv, req: id, name: String(name) })
      }
      return p
    },
    output (name, value) {
      if (!check(name, value, 'ctx.output')) return
      const prev = state.produced.get(name)
      if (prev === 'value') violate('produced twice', name)
      if (prev === 'stream') violate('ctx.output after ctx.emit (a stream output is closed when the function returns)', name)
      state.produced.set(name, 'value')
      // kept for a follower only (one linked after this post is given back: the value is missing), as a copy: the
      // function may change the object afterwards, and the host has it as it was
      if (readsOutput(state.then, name)) state.values.set(name, canonicalCopy(value))
      post({ type: 'output', inv, name, value })
      // at the end of the turn, if the function still runs, say so: the host announces these outputs at once
      // instead of holding them briefly for a return that would carry them in the step's done (mid-run posts)
      if (!state.midRunQueued) {
        state.midRunQueued = true
        setImmediate(() => { state.midRunQueued = false; if (!state.returned) post({ type: 'mid-run', inv }) })
      }
    },
    emit (name, value) {
      if (!check(name, value, 'ctx.emit')) return
      if (state.produced.get(name) === 'value') violate('ctx.emit after ctx.output', name)
      state.produced.set(name, 'stream')
      const index = state.streams[name] ?? 0
      state.streams[name] = index + 1
      post({ type: 'emit', inv, name, index, value })
    },
    log (...args) {
      post({ type: 'log', inv, line: format(...args) })
    }
  }
}

/** Checks the returned value and the output rules; returns the outputs to post, or throws. */
function finish (ret, state, declared) {
  if (state.violation !== undefined) throw state.violation
  const posts = []
  if (ret !== undefined && ret !== null) {
    const proto = typeof ret === 'object' ? Object.getPrototypeOf(ret) : undefined
    if (typeof ret !== 'object' || Array.isArray(ret) || (proto !== Object.prototype && proto !== null)) {
      const kind = Array.isArray(ret) ? 'an array' : typeof ret === 'object' ? `a ${ret.constructor?.name ?? 'object'}` : `a ${typeof ret}`
      throw new OutputRuleError(`the function returned ${kind}; it must return an object of outputs or nothing`)
    }
    for (const [name, value] of Object.entries(ret)) {
      if (!declared.has(name)) throw new OutputRuleError(`output ${JSON.stringify(name)}: is returned but not declared (declared: ${[...declared].join(', ') || 'none'})`, name)
      const prev = state.produced.get(name)
      if (prev === 'value') throw new OutputRuleError(`output ${JSON.stringify(name)}: produced twice (ctx.output and the returned object)`, name)
      if (prev === 'stream') throw new OutputRuleError(`output ${JSON.stringify(name)}: returned after ctx.emit`, name)
      const problem = valueProblem(value, '')
      if (problem !== undefined) throw new OutputRuleError(`output ${JSON.stringify(name)}: ${problem}`, name)
      posts.push([name, value])
    }
  }
  const produced = new Set([...state.produced.keys(), ...posts.map(p => p[0])])
  const missing = [...declared].filter(n => !produced.has(n))
  if (missing.length > 0) {
    throw new OutputRuleError(`output ${missing.map(n => JSON.stringify(n)).join(', ')}: declared but never produced (use ctx.output, ctx.emit or return it)`, missing[0])
  }
  return posts
}

async function invoke (msg) {
  const { inv } = msg
  const state = {
    inv,
    controller: new AbortController(),
    pending: new Map(),
    produced: new Map(),
    streams: {},
    violation: undefined,
    returned: false,
    /** a `mid-run` check is queued for the end of this turn */
    midRunQueued: false,
    /** value outputs posted while a follower is linked (its inputs) */
    values: new Map(),
    /** the invocation to run next in this instance (a `then` from the host) */
    then: undefined
  }
  current = state
  const fn = msg.exportName === 'default' ? mod.default : mod[msg.exportName]
  if (typeof fn !== 'function') {
    current = undefined
    const names = Object.keys(mod).join(', ') || 'none'
    post({ type: 'fail', inv, kind: 'load', message: `export ${JSON.stringify(msg.exportName)} is ${fn === undefined ? 'missing' : `a ${typeof fn}, not a function`} (exports: ${names})` })
    return
  }
  const ctx = makeContext(msg, state)
  const declared = new Set(msg.outputs)
  const startedAt = Date.now()
  let ret
  try {
    ret = await fn(ctx)
  } catch (err) {
    flushPartial()
    state.returned = true
    current = undefined
    unchain(state)
    if (state.violation !== undefined) {
      post({ type: 'fail', inv, kind: 'output', message: state.violation.message, output: state.violation.output })
    } else {
      post({ type: 'fail', inv, kind: 'function', ...errorFields(err) })
    }
    return
  }
  const endedAt = Date.now()
  flushPartial()
  state.returned = true
  current = undefined
  let posts
  try {
    posts = finish(ret, state, declared)
  } catch (err) {
    unchain(state)
    post({ type: 'fail', inv, kind: 'output', message: err.message, output: err.output })
    return
  }
  for (const [name, value] of posts) {
    if (readsOutput(state.then, name)) state.values.set(name, canonicalCopy(value))
    post({ type: 'output', inv, name, value })
  }
  post({ type: 'done', inv, startedAt, endedAt, streams: state.streams })
  follow(state)
}

/** Whether the linked follower takes this output as an input (one that only waited for the slot takes none). */
function readsOutput (next, name) {
  if (next === undefined) return false
  for (const output of Object.values(next.from ?? {})) if (output === name) return true
  return false
}

/** The running invocation will not be followed: its follower is given back to the host. */
function unchain (state) {
  const next = state.then
  state.then = undefined
  if (next !== undefined) post({ type: 'unchained', inv: next.inv })
}

/** Starts the follower of an invocation that returned, with its producer's values as inputs. */
function follow (state) {
  const next = state.then
  if (next === undefined) return
  state.then = undefined
  const inputs = { ...(next.inputs ?? {}) }
  const used = new Set()
  for (const [input, output] of Object.entries(next.from ?? {})) {
    if (!state.values.has(output)) { post({ type: 'unchained', inv: next.inv }); return }
    // stored as copies already; an output read by two inputs gives each its own
    inputs[input] = used.has(output) ? canonicalCopy(state.values.get(output)) : state.values.get(output)
    used.add(output)
  }
  post({ type: 'chained', inv: next.inv })
  void invoke({ ...next, type: 'invoke', inputs })
}

/**
 * The value as the follower would have had it through the store (encoded as DAG-CBOR and decoded): a copy (the
 * producer keeps its own), map keys in DAG-CBOR's order (shorter first, then by bytes), plain Uint8Arrays, no -0.
 */
function canonicalCopy (value) {
  if (value === null || typeof value !== 'object') return Object.is(value, -0) ? 0 : value
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (Array.isArray(value)) return value.map(canonicalCopy)
  // each key encoded once, not in the comparator
  const keys = Object.keys(value).map(k => ({ k, b: Buffer.from(k) }))
  keys.sort((x, y) => x.b.length - y.b.length || Buffer.compare(x.b, y.b))
  const out = {}
  for (const { k } of keys) out[k] = canonicalCopy(value[k])
  return out
}

function onMessage (msg) {
  switch (msg.type) {
    case 'invoke':
      void invoke(msg)
      break
    case 'input-result': {
      const p = current?.inv === msg.inv ? current.pending.get(msg.req) : undefined
      if (p === undefined) return
      current.pending.delete(msg.req)
      if (msg.ok) p.resolve(msg.value)
      else p.reject(new Error(msg.message))
      break
    }
    case 'then': {
      // a follower for the running invocation; one that came too late is given back at once
      if (current?.inv === msg.inv && !current.returned && current.then === undefined && msg.next != null) current.then = msg.next
      else if (msg.next != null) post({ type: 'unchained', inv: msg.next.inv })
      break
    }
    case 'unthen':
      if (current?.then?.inv === msg.inv) unchain(current)
      break
    case 'abort': {
      if (current?.inv !== msg.inv) return
      unchain(current)
      const reason = new Error(msg.message)
      reason.name = msg.reason
      current.controller.abort(reason)
      // a function awaiting an input that will never come should see the abort too
      for (const p of current.pending.values()) p.reject(reason)
      current.pending.clear()
      break
    }
  }
}

/**
 * Starts the instance: `send` posts to the host, `listen` registers the handler of host messages, `code` names the
 * module file and its hash. Console and stdout/stderr go to the host as log lines from here on.
 */
export async function startInstance ({ send, listen, code }) {
  post = send
  captureOutput()
  listen(onMessage)
  try {
    mod = await loadModule(code)
    post({ type: 'ready' })
  } catch (err) {
    post({ type: 'load-error', ...errorFields(err) })
  }
}

/** For process-entry.mjs: the message of an uncaught error, formatted as the worker 'error' event gives it. */
export function uncaughtMessage (err) {
  return err instanceof Error ? `uncaught ${err.name}: ${err.message}` : `uncaught ${format('%s', err)}`
}
