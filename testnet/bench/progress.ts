/** Bench progress: a cli-progress bar on a terminal, plain lines otherwise (logs, CI). */
import cliProgress from 'cli-progress'
import type { BenchProgress } from './runner.ts'

export interface ProgressReporter { update: (p: BenchProgress) => void, stop: () => void }

export function progressReporter (out: NodeJS.WriteStream): ProgressReporter {
  const tty = out.isTTY === true
  let bar: cliProgress.SingleBar | undefined
  let barPhase: string | undefined
  let lastLine = ''
  let lastPlain = 0
  const plain = (line: string, force = false): void => {
    // plain mode: at most one line per 2 s unless the phase changes, so logs stay readable
    if (line === lastLine || (!force && Date.now() - lastPlain < 2000)) return
    lastLine = line
    lastPlain = Date.now()
    out.write(line + '\n')
  }
  return {
    update: p => {
      if (p.phase === 'testnet') {
        const d = p.detail
        plain(d.phase === 'spawn' ? `testnet: ${d.ready}/${d.total} peers started` : `testnet: mesh ${d.ready}/${d.total}`, true)
        return
      }
      if (p.phase === 'idle') { plain(`idle traffic: ${p.bytesPerSec} B/s`, true); return }
      if (p.phase === 'yardstick') { bar?.stop(); bar = undefined; barPhase = undefined; plain(`yardstick: Dask distributed on ${p.workflows} workflow shapes`, true); return }
      if (p.phase === 'load') { plain(`loaded ${p.done}/${p.total} workflows`, p.done === p.total); return }
      if (tty) {
        if (barPhase !== p.phase) {
          bar?.stop()
          bar = new cliProgress.SingleBar({ stream: out, format: `${p.phase.padEnd(7)} [{bar}] {value}/{total} {eta_formatted} left | failed {failed} | {label}`, hideCursor: true }, cliProgress.Presets.shades_classic)
          bar.start(p.total, 0, { label: '', failed: 0 })
          barPhase = p.phase
        }
        bar?.update(p.done, { label: p.label, failed: p.failed })
      } else {
        plain(`${p.phase} ${p.done}/${p.total} (failed ${p.failed}): ${p.label}`, p.done === p.total || p.done === 1)
      }
    },
    stop: () => { bar?.stop(); bar = undefined }
  }
}
