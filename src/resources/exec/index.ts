/**
 * `agentcap/exec`: confined subprocesses. argv only, no shell, real-path
 * program and working directory, an environment from the application's map,
 * time, output and memory limits, the process group killed on revocation.
 */
export { createExec, DEFAULT_EXEC_LIMITS } from "./runner.js";
export type { Exec, ExecConfig, ExecLimits, ExecReach, ExecResult, OutputEncoding, RunOptions } from "./runner.js";
