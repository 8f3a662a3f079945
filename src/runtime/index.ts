/**
 * `agentcap/runtime`: Session → Governor → Executor. The session holds a
 * user's root capability; the Governor gives each subtask an attenuated,
 * revocable capability that dies with it; an Executor runs an agent loop
 * (Vercel AI SDK) over the tools its capability reaches.
 */
export { authenticateSession, openSession } from "./session.js";
export type { OpenSessionOptions, Session } from "./session.js";
export { createGovernor } from "./governor.js";
export type { Governor, GovernorOptions, SubtaskOutcome, SubtaskSpec, TaskContext, TaskHandle } from "./governor.js";
export type { CriticalCheck, CriticalOptions } from "./critical-calls.js";
export type { TaskStatus } from "./task-lifetime.js";
export { createExecutor } from "./executor.js";
export type { CallRecord, CallVerdict, DelegateOptions, Executor, ExecutorOptions, ExecutorResult, RoutedTool } from "./executor.js";
export { agentSubtask } from "./agent-task.js";
export type { AgentSubtaskOptions } from "./agent-task.js";
export { delegationTool } from "./delegation.js";
export type { DelegationResult, SubAgent } from "./delegation.js";
