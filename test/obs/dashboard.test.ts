import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { testnetClient } from '../../testnet/clients.ts'
import { startTestnet, type Testnet } from '../../testnet/index.ts'
import { loadWorkflow } from '../../node/workflow/index.ts'
import { browserMissing, launchBrowser } from './browser.ts'
import type { RequestView } from '../../node/dscheduler/types.ts'
import type { Page } from 'playwright-core'

const PIPELINE = fileURLToPath(new URL('../dscheduler/fixtures/pipeline.yaml', import.meta.url))
const SCREENSHOT = fileURLToPath(new URL('../../docs/img/dashboard.png', import.meta.url))
const SCREENSHOT_NETWORK = fileURLToPath(new URL('../../docs/img/dashboard-network.png', import.meta.url))

const missing = await browserMissing()
// on CI (.ci/run installs chromium) a missing browser is a failure; elsewhere the test is skipped and says why
if (missing !== undefined && process.env.CI === 'true') throw new Error(missing)
if (missing !== undefined) process.stderr.write(`\nSKIPPED test/obs/dashboard.test.ts: ${missing}\n\n`)

describe('the dashboard in a real browser (playwright-core + chromium), 3-peer testnet', () => {
  let dir: string
  let net: Testnet
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined
  let page: Page
  let view: RequestView

  beforeAll(async () => {
    if (missing !== undefined) return
    dir = await mkdtemp(join(tmpdir(), 'dflow-dashboard-'))
    // one slot each: the foreach instances spread over the three peers (a richer picture, and the check covers them all)
    net = await startTestnet({ peers: 3, dir, flags: ['--slots', '1'] })
    const c0 = await testnetClient(dir, net.manifest.peers[0])
    const workflow = await c0.addWorkflow((await loadWorkflow(PIPELINE)).bytes)
    const id = await c0.submit({ workflow, inputs: { n: 6 } })
    view = await c0.wait(id)
    browser = await launchBrowser()
    page = await browser.context.newPage()
    page.setDefaultTimeout(30_000)
  }, 180_000)

  afterAll(async () => {
    await browser?.close()
    await net?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  // the page refreshes every 2 s; on a busy machine a status answer can miss one round
  const poll = <T>(fn: () => Promise<T>, timeout = 20_000): ReturnType<typeof expect.poll<T>> => expect.poll(fn, { timeout, interval: 250 })
  const peerRow = (peerId: string): ReturnType<Page['locator']> => page.locator(`#network tr[data-peer-id="${peerId}"]`)

  it('the network view of peer 2 lists the three peers, alive, with their slots', async (ctx) => {
    if (missing !== undefined) { ctx.skip(missing); return }
    expect(view.status, view.error).toBe('ok')
    const errors: string[] = []
    page.on('pageerror', err => { errors.push(err.message) })
    await page.goto(net.manifest.peers[2].api + '/')
    await poll(async () => page.locator('#network tr[data-peer-id]').count(), 30_000).toBe(3)
    for (const p of net.manifest.peers) {
      const row = peerRow(p.peerId)
      await poll(async () => row.getAttribute('data-state')).toBe('alive')
      expect(await row.locator(`[title="${p.peerId}"]`).count()).toBe(1)
      // slots are figures only that peer knows: asked over /dflow/status/1.0.0
      await poll(async () => row.locator('.slots').textContent()).toMatch(/^\d+ busy \/ \d+ free$/)
    }
    await poll(async () => page.locator(`#requests tr[data-request-id="${view.requestId}"]`).getAttribute('data-status')).toBe('ok')
    expect(errors).toEqual([])
  })

  it('the request view on peer 2 shows every step with its peer and state, the DAG and the timeline', async (ctx) => {
    if (missing !== undefined) { ctx.skip(missing); return }
    await page.goto(`${net.manifest.peers[2].api}/requests/${view.requestId}`)
    await poll(async () => page.locator('#request').getAttribute('data-status')).toBe('ok')
    await page.locator('#dag').waitFor()
    expect(await page.locator('#steps tr[data-step]').count()).toBe(view.steps.length)
    for (const s of view.steps) {
      const row = page.locator(`#steps tr[data-step="${s.name}"][data-index="${s.index ?? ''}"]`)
      // peer 2 may hear a step-done after the request-done (another publisher): its view converges (settle.ts)
      await poll(async () => row.getAttribute('data-state')).toBe(s.status)
      expect(await row.getAttribute('data-peer')).toBe(s.peer ?? '')
      if (s.peer !== null) expect(await row.locator(`[title="${s.peer}"]`).count()).toBe(1)
    }
    for (const name of new Set(view.steps.map(s => s.name))) {
      await poll(async () => page.locator(`#dag g[data-step="${name}"]`).getAttribute('data-state')).toBe('ok')
    }
    const peersRan = new Set(view.steps.map(s => s.peer))
    await poll(async () => page.locator('#timeline g[data-peer]').count()).toBe(peersRan.size)
    expect(JSON.parse(await page.locator('#outputs').textContent() ?? '')).toEqual(view.outputs)
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    expect((await stat(SCREENSHOT)).size).toBeGreaterThan(10_000)
  })

  it('a killed peer is marked dead on peer 2', async (ctx) => {
    if (missing !== undefined) { ctx.skip(missing); return }
    const victim = net.manifest.peers[1].peerId
    await page.goto(net.manifest.peers[2].api + '/')
    await poll(async () => peerRow(victim).getAttribute('data-state')).toBe('alive')
    await net.kill(1)
    await poll(async () => peerRow(victim).getAttribute('data-state'), 40_000).toBe('dead')
    for (const i of [0, 2]) expect(await peerRow(net.manifest.peers[i].peerId).getAttribute('data-state')).toBe('alive')
    await page.screenshot({ path: SCREENSHOT_NETWORK, fullPage: true })
  })
})
