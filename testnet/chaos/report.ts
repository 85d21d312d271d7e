import { verified, type ChaosResult } from './harness.ts'

const ms = (v: number | null | undefined): string => v == null ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`

/** The readable report: totals, each fault with its recovery time, and every request that is not ok. */
export function formatReport (result: ChaosResult, extra: { dir?: string, kept?: boolean } = {}): string {
  const r = result.report
  const lines: string[] = []
  const pct = r.requests === 0 ? 0 : (100 * r.ok) / r.requests
  lines.push(`chaos seed ${r.seed}: ${r.requests} requests in ${(result.durationMs / 1000).toFixed(1)} s`)
  lines.push(`  verified ok ${r.ok} (${pct.toFixed(1)}%)   failed ${r.failed}   lost ${r.lost}   wrong ${r.wrong}`)
  lines.push(`  faults ${r.killed} (recovered ${r.restarted})   takeovers ${r.takeovers}   reruns ${r.reruns}   rereplications ${r.rereplications}   claims ${result.counters.claims}`)
  lines.push(`  recovery p50 ${ms(r.recoverMs.p50)}   p99 ${ms(r.recoverMs.p99)}`)
  for (const f of result.faults) {
    const submittedThere = result.outcomes.filter(o => o.peer === f.peer && o.submittedAt <= f.at && (o.finishedAt === undefined || o.finishedAt > f.at)).length
    const rec = f.recoverError != null
      ? `; ${f.kind === 'kill' ? 'restart' : 'heal'} FAILED: ${f.recoverError}`
      : f.recoveredAt != null ? `; ${f.kind === 'kill' ? 'restarted' : 'healed'} after ${ms(f.recoveredAt - f.at)}` : ''
    lines.push(`  fault #${f.n}: ${f.kind === 'kill' ? 'killed' : 'cut off'} peer ${f.peer} before request ${f.atRequest} (${submittedThere} in flight submitted to it); recovered in ${ms(f.recoverMs)}${rec}`)
  }
  if (result.referenceRetries > 0) lines.push(`  note: ${result.referenceRetries} clean run(s) hung on the embedded peer and were run again (an embedded-scheduler bug)`)
  const bad = result.outcomes.filter(o => o.verdict !== 'ok')
  for (const o of bad.slice(0, 50)) {
    lines.push(`  ${o.verdict.toUpperCase().padEnd(6)} ${o.requestId} (${o.workflow}, submitted to peer ${o.peer}): ${o.detail ?? ''}`)
  }
  if (bad.length > 50) lines.push(`  ... and ${bad.length - 50} more`)
  if (extra.dir != null) lines.push(`  testnet dir ${extra.dir}${extra.kept === false ? ' (removed)' : ' (peer logs: peer-N.log)'}`)
  lines.push(verified(r) ? 'PASS: every request verified' : 'FAIL: some requests failed, were lost or are wrong')
  return lines.join('\n') + '\n'
}
