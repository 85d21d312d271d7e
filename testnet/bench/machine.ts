/** What the results say about where they were measured. */
import { execFileSync } from 'node:child_process'
import { cpus, totalmem, platform, release } from 'node:os'
import { fileURLToPath } from 'node:url'

// the code's own checkout, whatever directory the bench is started from
const REPO = fileURLToPath(new URL('../..', import.meta.url))

export function describeMachine (): { machine: string, date: string, commit: string } {
  const cpu = cpus()
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    if (dirty) commit += '+uncommitted'
  } catch {}
  return {
    machine: `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()}, Node ${process.versions.node}`,
    date: new Date().toISOString(),
    commit
  }
}
