import { access, constants, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

/** Debian's chromium (`apt-get install -y chromium`; .ci/run installs it), or CHROMIUM_PATH. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Why no browser can run here, or undefined when one can. */
export async function browserMissing (): Promise<string | undefined> {
  try {
    await access(CHROMIUM, constants.X_OK)
    return undefined
  } catch {
    return `no browser: ${CHROMIUM} is missing or not executable. Install Debian's chromium (apt-get install -y chromium, as root; .ci/run does it) or point CHROMIUM_PATH at a Chromium binary`
  }
}

/** The flags that work on this machine (no sandbox as root, no GPU, no background traffic), a fresh profile. */
export async function launchBrowser (): Promise<{ context: BrowserContext, close: () => Promise<void> }> {
  const profile = await mkdtemp(join(tmpdir(), 'dflow-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    timeout: 60_000
  })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      await rm(profile, { recursive: true, force: true })
    }
  }
}
