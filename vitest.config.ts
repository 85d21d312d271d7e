import { defineConfig } from 'vitest/config'

/**
 * In-process files that start no peer, no TCP listener and no child process, and assert nothing about time: they run
 * two at a time first. Anything not listed here runs in the serial group, so a new test file is serial until
 * someone shows it is light.
 */
const light = [
  'test/workflow/{graph,parse,bundle}.test.ts',
  'test/fuzz/{sync,streams,events,submit,http,bundles}.fuzz.test.ts',
  'test/sync/{wiring,anti-entropy,event-log,codec,protocol}.test.ts',
  'test/peer/{yamux-window,lp-decoder,ed25519-keys,config,gossip-window,guard,gossip-timers,api,malloc-trim}.test.ts',
  'test/obs/{loop-delay,status}.test.ts',
  'test/dstore/{routes,local}.test.ts',
  'test/dscheduler/{claims,inputs-ready,send-slack,events,state,placement,prewarm,warm-plan}.test.ts',
  'test/functions/{examples,benchmarks}.test.ts',
  'test/executor/typed-function.test.ts',
  'test/bench/phases.test.ts'
]

const shared = {
  setupFiles: ['./node/util/polyfill.ts'],
  testTimeout: 60_000,
  hookTimeout: 60_000,
  pool: 'forks' as const
}

export default defineConfig({
  test: {
    projects: [
      {
        test: { ...shared, name: 'light', include: light, maxWorkers: 2, isolate: false, sequence: { groupOrder: 0 } }
      },
      {
        test: {
          ...shared,
          name: 'serial',
          include: ['test/**/*.test.ts', 'node/**/*.test.ts', 'protocols/**/*.test.ts', 'functions/**/*.test.ts', 'testnet/**/*.test.ts'],
          exclude: [...light, '**/node_modules/**'],
          // one file at a time: several start real peer processes, and on 2 cores two such files at once starve
          // peers for seconds (leases lapse, timings stretch), which is not the normal operation they test
          fileParallelism: false,
          maxWorkers: 1,
          // one worker keeps its module cache from file to file: a fresh fork per file cost ~0.6 s of start-up and
          // imports each, 33 s of a 389 s run (files restore what they change: env, fake timers, peers)
          isolate: false,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
