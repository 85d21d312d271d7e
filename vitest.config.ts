import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'node/**/*.test.ts', 'protocols/**/*.test.ts', 'functions/**/*.test.ts', 'testnet/**/*.test.ts'],
    setupFiles: ['./node/util/polyfill.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2
  }
})
