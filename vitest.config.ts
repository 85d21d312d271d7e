import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'node/**/*.test.ts', 'protocols/**/*.test.ts', 'functions/**/*.test.ts', 'testnet/**/*.test.ts'],
    setupFiles: ['./node/util/polyfill.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // test files run one at a time: several of them start real peer processes, and on 2 cores two such files
    // at once starve peers for seconds (leases lapse, timings stretch) - not the normal operation they test
    fileParallelism: false,
    maxWorkers: 2
  }
})
