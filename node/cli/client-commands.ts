import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Option, type Command } from 'commander'
import { ApiError, DflowClient } from '../client.ts'
import { toJsonValue, type Value } from '../values/codec.ts'
import { loadWorkflow, WorkflowValidationError } from '../workflow/index.ts'
import { requireManifest } from '../../testnet/manifest.ts'
import { readApiToken } from '../../testnet/clients.ts'
import { CLIENT_KEY_FILE, KeyFileError, loadIdentity } from '../keys.ts'
import type { PrivateKey } from '@libp2p/interface'
import { parseDuration } from '../config.ts'
import { CliError, UsageError, parseIndex } from './common.ts'
import { inputOptionParser, parseInputs } from './inputs.ts'
import { renderView, runJson } from './render.ts'
import type { RequestView } from '../dscheduler/types.ts'

interface PeerOpts { peer?: string, api?: string, dir: string, token?: string, identity?: string }

/**
 * `--peer I` (index in DIR's manifest), `--api URL`, `--dir DIR`, `--token FILE`, `--identity FILE`; shared by
 * every command that talks to a peer.
 */
function addPeerTarget (cmd: Command): Command {
  return cmd
    .option('--peer <index>', "the testnet peer to talk to (index in DIR's manifest)")
    .option('--api <url>', 'a peer API URL (instead of --peer)')
    .option('--dir <dir>', 'the testnet directory', '.testnet')
    .option('--token <file>', "the peer's API token file (its DATA/api.token); with --dir it is read from the peer's data dir")
    .option('--identity <file>', 'the identity that signs submissions and cancels (dflow key new FILE); default DIR/client.key')
}

async function readToken (file: string): Promise<string> {
  try {
    const token = (await readFile(file, 'utf8')).trim()
    if (token === '') throw new Error('it is empty')
    return token
  } catch (err) {
    throw new CliError(`--token ${file}: cannot read the API token: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2)
  }
}

/** --identity FILE, else DIR/client.key when the testnet made one; none otherwise (the peer will refuse writes that need it). */
async function identityFor (opts: PeerOpts): Promise<PrivateKey | undefined> {
  try {
    if (opts.identity !== undefined) return await loadIdentity(opts.identity)
    if (opts.api !== undefined) return undefined
    return await loadIdentity(join(opts.dir, CLIENT_KEY_FILE)).catch(err => { if (err instanceof KeyFileError && /does not exist/.test(err.message)) return undefined; throw err })
  } catch (err) {
    if (err instanceof KeyFileError) throw new CliError(`--identity: ${err.message}`, 2)
    throw err
  }
}

export async function clientFor (opts: PeerOpts): Promise<{ client: DflowClient, peers: Map<string, string> }> {
  if (opts.api !== undefined && opts.peer !== undefined) throw new UsageError('give --peer or --api, not both')
  const peers = new Map<string, string>()
  const identity = await identityFor(opts)
  if (opts.api !== undefined) {
    try { void new URL(opts.api) } catch { throw new UsageError(`--api ${JSON.stringify(opts.api)} is not a URL`) }
    const token = opts.token === undefined ? undefined : await readToken(opts.token)
    return { client: new DflowClient(opts.api, { token, identity }), peers }
  }
  const manifest = await requireManifest(opts.dir)
  for (const p of manifest.peers) peers.set(p.peerId, `peer ${p.index}`)
  const index = opts.peer === undefined ? 0 : parseIndex(opts.peer, '--peer')
  const entry = manifest.peers.find(p => p.index === index)
  if (entry === undefined) throw new UsageError(`--peer ${index}: the testnet in ${opts.dir} has peers 0-${manifest.peers.length - 1}`)
  const token = opts.token === undefined ? readApiToken(entry.dataDir) : await readToken(opts.token)
  return { client: new DflowClient(entry.api, { token, identity }), peers }
}

function parseDeadline (text: string): number {
  try {
    return parseDuration(text, '--deadline')
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

/** A one-line live view on a terminal while a request runs. */
function liveView (enabled: boolean): { update: (v: RequestView) => void, done: () => void } {
  if (!enabled) return { update: () => {}, done: () => {} }
  const started = Date.now()
  return {
    update: v => {
      const count = (s: string): number => v.steps.filter(x => x.status === s).length
      const running = v.steps.filter(x => x.status === 'running').map(x => `${x.name}${x.index === null ? '' : `[${x.index}]`}`).slice(0, 4)
      process.stderr.write(`\r\x1b[K${((Date.now() - started) / 1000).toFixed(1)}s  ok ${count('ok')}  running ${count('running')}${running.length > 0 ? ` (${running.join(' ')})` : ''}  skipped ${count('skipped')}  failed ${count('failed')}`)
    },
    done: () => { process.stderr.write('\r\x1b[K') }
  }
}

async function waitAndPrint (client: DflowClient, id: string, json: boolean, peers: Map<string, string>): Promise<number> {
  const live = liveView(!json && process.stderr.isTTY === true)
  const view = await client.wait(id, { onUpdate: live.update, pollMs: 100 })
  live.done()
  process.stdout.write((json ? JSON.stringify(runJson(view)) : renderView(view, { peers })) + '\n')
  return view.status === 'ok' ? 0 : 1
}

interface SubmitOpts extends PeerOpts { input?: string[], bytes?: string[], mode: string, store: string, requestId?: string, deadline?: string, json?: boolean, wait: boolean }

function jsonInputs (inputs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(inputs)) out[k] = toJsonValue(v as Value)
  return out
}

export function registerClientCommands (program: Command): void {
  addPeerTarget(program.command('submit')
    .description('submit a workflow request to a peer of a running network and follow it')
    .argument('<workflow>', 'the workflow file (YAML)')
    .option('--input <NAME=VALUE>', 'an input: JSON when it parses, else a string; NAME=@PATH reads a UTF-8 file', inputOptionParser)
    .option('--bytes <NAME=@PATH>', "an input from a file's bytes", inputOptionParser)
    .addOption(new Option('--mode <mode>', 'dataflow or control').choices(['dataflow', 'control']).default('dataflow'))
    .addOption(new Option('--store <store>', 'distributed or central').choices(['distributed', 'central']).default('distributed'))
    .option('--request-id <id>', 'a client-chosen id: submitting it again returns the same request')
    .option('--deadline <duration>', 'fail the request if not done by then (e.g. 30s)')
    .option('--json', 'print one JSON object (as dflow run --json)')
    .option('--no-wait', 'print the request id and return at once'))
    .action(async (file: string, opts: SubmitOpts) => {
      let inputs
      let bundle
      try {
        inputs = parseInputs(opts.input, opts.bytes)
        bundle = await loadWorkflow(file)
      } catch (err) {
        if (!(err instanceof WorkflowValidationError || err instanceof UsageError)) throw err
        if (opts.json === true) { process.stdout.write(JSON.stringify({ status: 'invalid', error: err.message }) + '\n'); process.exitCode = 2; return }
        throw new CliError(err.message, 2)
      }
      const deadlineMs = opts.deadline === undefined ? undefined : parseDeadline(opts.deadline)
      const { client, peers } = await clientFor(opts)
      const workflow = await client.addWorkflow(bundle.bytes)
      let id: string
      try {
        id = await client.submit({ workflow, inputs: jsonInputs(inputs), requestId: opts.requestId, mode: opts.mode, store: opts.store, deadlineMs })
      } catch (err) {
        if (err instanceof ApiError && err.status === 400) {
          if (opts.json === true) { process.stdout.write(JSON.stringify({ status: 'invalid', error: err.message }) + '\n'); process.exitCode = 2; return }
          throw new CliError(err.message, 2)
        }
        throw err
      }
      if (!opts.wait) { process.stdout.write(opts.json === true ? JSON.stringify({ requestId: id }) + '\n' : `${id}\n`); return }
      process.exitCode = await waitAndPrint(client, id, opts.json === true, peers)
    })

  addPeerTarget(program.command('status')
    .description("a request's status, outputs and timeline, from any peer")
    .argument('<requestId>')
    .option('--wait', 'wait until the request finished')
    .option('--json', 'print one JSON object (as dflow run --json)'))
    .action(async (id: string, opts: PeerOpts & { wait?: boolean, json?: boolean }) => {
      const { client, peers } = await clientFor(opts)
      if (opts.wait === true) { process.exitCode = await waitAndPrint(client, id, opts.json === true, peers); return }
      const view = await client.status(id)
      process.stdout.write((opts.json === true ? JSON.stringify(runJson(view)) : renderView(view, { peers })) + '\n')
      process.exitCode = view.status === 'failed' ? 1 : 0
    })

  addPeerTarget(program.command('cancel').description('cancel a running request').argument('<requestId>'))
    .action(async (id: string, opts: PeerOpts) => {
      const { client } = await clientFor(opts)
      const r = await client.cancel(id)
      process.stdout.write(r.cancelled ? `cancelled ${id}\n` : `${id} was not running\n`)
    })

  addPeerTarget(program.command('logs').description('what the functions of a request wrote with ctx.log, from every peer').argument('<requestId>')
    .option('--json', 'print JSON'))
    .action(async (id: string, opts: PeerOpts & { json?: boolean }) => {
      const { client, peers } = await clientFor(opts)
      const r = await client.logs(id)
      if (opts.json === true) { process.stdout.write(JSON.stringify(r) + '\n'); return }
      for (const l of r.logs) {
        process.stdout.write(`${new Date(l.ts).toISOString()} ${peers.get(l.peer) ?? l.peer.slice(-8)} ${l.step}${l.index === null ? '' : `[${l.index}]`}: ${l.line}\n`)
      }
    })

  addPeerTarget(program.command('put').description('store a file in DStore and print its CID (pass it as an input: {"$cid": "..."})').argument('<file>')
    .option('--json', 'store the file as a JSON value instead of bytes'))
    .action(async (file: string, opts: PeerOpts & { json?: boolean }) => {
      let data: Buffer
      try { data = await readFile(file) } catch (err) { throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2) }
      const { client } = await clientFor(opts)
      let body: { bytes: Uint8Array } | { json: unknown }
      if (opts.json === true) {
        try { body = { json: JSON.parse(data.toString('utf8')) } } catch (err) { throw new CliError(`${file} is not JSON: ${(err as Error).message}`, 2) }
      } else body = { bytes: new Uint8Array(data) }
      const r = await client.put(body)
      process.stdout.write(`${r.cid}\n`)
    })
}
