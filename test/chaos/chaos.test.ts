import { afterAll, describe, expect, it } from 'vitest'
import { isAlive } from '../../testnet/index.ts'
import { verified } from '../../testnet/chaos/harness.ts'
import { NetnsCluster, partitionSupport } from '../../testnet/chaos/netns.ts'
import { chaos, type ChaosRun } from '../../testnet/chaos/run.ts'
import { EXAMPLE_NAMES } from '../../testnet/chaos/workload.ts'
import { readFile } from 'node:fs/promises'

const REPORT_KEYS = ['requests', 'ok', 'failed', 'lost', 'wrong', 'killed', 'restarted', 'takeovers', 'reruns', 'rereplications', 'recoverMs', 'seed', 'duplicateRuns', 'hung']

function explain (run: ChaosRun): string {
  return JSON.stringify({ report: run.report, dir: run.dir, bad: run.outcomes.filter(o => o.verdict !== 'ok'), faults: run.faults }, null, 2)
}

describe('dflow testnet chaos', () => {
  const pids = new Set<number>()
  afterAll(() => { for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL') })

  // the CI scenario of issue 6: 6 peers, 30 requests, 2 SIGKILLs with restart; every request verified
  it('6 peers, 30 requests, 2 kills with restart: 100% verified', async () => {
    const run = await chaos({ peers: 6, requests: 30, kill: 2, restart: true, workflows: EXAMPLE_NAMES, seed: 'ci', requestTimeoutMs: 60_000 })
    expect(Object.keys(run.report)).toEqual(REPORT_KEYS)
    expect(run.report.killed, explain(run)).toBe(2)
    expect(run.report.restarted, explain(run)).toBe(2)
    expect({ failed: run.report.failed, lost: run.report.lost, wrong: run.report.wrong }, explain(run)).toEqual({ failed: 0, lost: 0, wrong: 0 })
    expect(run.report.ok, explain(run)).toBe(30)
    expect(verified(run.report)).toBe(true)
    expect(run.report.recoverMs.p50).not.toBeNull()
    // killed peers' in-flight claims must have been taken over by someone, or nothing was in flight there
    expect(run.counters.claims).toBeGreaterThan(0)
    // it stopped the testnet it started
    if (run.kept) {
      const manifest = JSON.parse(await readFile(`${run.dir}/manifest.json`, 'utf8')) as { peers: Array<{ pid: number }> }
      for (const p of manifest.peers) { pids.add(p.pid); expect(isAlive(p.pid)).toBe(false) }
    }
  }, 170_000)

  // lost messages, not dead peers: every peer drops a tenth of the readiness events it receives; anti-entropy
  // (request sync) must bring every one of them back, so nothing hangs and every result verifies
  it('4 peers, 16 requests, 10% of events dropped on every peer: all verified, none hung', async () => {
    const run = await chaos({ peers: 4, requests: 16, kill: 0, dropEvents: 0.1, workflows: EXAMPLE_NAMES, seed: 'drops', requestTimeoutMs: 60_000 })
    expect({ ok: run.report.ok, failed: run.report.failed, lost: run.report.lost, wrong: run.report.wrong, hung: run.report.hung }, explain(run))
      .toEqual({ ok: 16, failed: 0, lost: 0, wrong: 0, hung: 0 })
    expect(run.counters.claims).toBeGreaterThan(0)
  }, 170_000)

  // runs only where network namespaces can be made (root + iproute2); elsewhere `--partition` itself skips
  it.runIf(partitionSupport() === undefined)('partition: a peer cut off and healed does not corrupt results', async () => {
    const run = await chaos({
      peers: 4, requests: 12, kill: 1, partition: true, workflows: EXAMPLE_NAMES, seed: 'cut', requestTimeoutMs: 60_000,
      openCluster: async peers => NetnsCluster.start({ peers })
    })
    expect(run.report.killed, explain(run)).toBe(1)
    expect(run.report.restarted, explain(run)).toBe(1)
    expect({ ok: run.report.ok, failed: run.report.failed, lost: run.report.lost, wrong: run.report.wrong }, explain(run)).toEqual({ ok: 12, failed: 0, lost: 0, wrong: 0 })
  }, 170_000)
})
