/**
 * The kernel link and its tools: what the CLI (`doctor`, `cleanup`) and the orchestrator
 * (`--link kernel`) import. Builders are exported for anyone who needs one more command.
 */
export { KernelLink, DEFAULT_SUBNET, DEFAULT_MIGRATION_PORT, DEFAULT_RECOVER_PORT, NOT_ROOT_MESSAGE, type KernelLinkOptions } from './kernel-link.js';
export { probeKernel, type KernelProbe, type CheckResult, type ToolInfo, type QdiscKind } from './probe.js';
export { runDoctor, buildDoctorReport, formatDoctor, netemFix, type DoctorReport, type DoctorCheck, type CheckStatus, type KernelFaultName } from './doctor.js';
export { findLeftovers, cleanupLeftovers, listNamespaces, type Leftovers, type LeftoverNamespace, type CleanupResult, type CleanupOptions } from './cleanup.js';
export { KernelCommandError, KernelValidationError, KernelUnsupportedError, KernelApplyError, isNotExist } from './errors.js';
export { run, runIgnoringNotExist, type Runner, type RunOptions, type RunResult } from './run.js';
export type { Argv } from './argv.js';
export * as ip from './ip.js';
export * as tc from './tc.js';
export * as nft from './nft.js';
export { PREFIX, parseSubnet, renderRate, renderTime, renderPercent, renderSize } from './validate.js';
