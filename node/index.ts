// The `dflow` package entry, imported by step function modules (`import type { StepContext } from 'dflow'`).
// Deliberately free of runtime dependencies: if a user module imports a value from here, the bundler pulls this
// file into the function's bundle, so it must not drag in the peer (workers, libp2p, loggers).
export type { StepContext, StepFunction } from './executor/context.ts'
export type { Value } from './values/codec.ts'
export type { FunctionCode, InstanceSpec, InvokeOptions, InvokeResult } from './executor/types.ts'
export type { WorkerPoolOptions, PoolStats } from './executor/pool.ts'
export {
  StepError, FunctionError, OutputError, StepTimeoutError, StepOutOfMemoryError, StepCrashedError,
  StepCancelledError, ModuleLoadError, PoolStoppedError
} from './executor/errors.ts'
