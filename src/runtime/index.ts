/**
 * `agentcap/runtime`: Session → Governor → Executor. The session holds a
 * user's root capability; the Governor gives each subtask an attenuated,
 * revocable capability that dies with it; an Executor runs an agent loop
 * (Vercel AI SDK) over the tools its capability reaches.
 */
export { authenticateSession, openSession } from "./session.ts";
export type { OpenSessionOptions, Session } from "./session.ts";
export { createGovernor } from "./governor.ts";
export type {
  CriticalCheck,
  CriticalOptions,
  Governor,
  GovernorOptions,
  SubtaskOutcome,
  SubtaskSpec,
  TaskContext,
  TaskHandle,
  TaskStatus,
} from "./governor.ts";
export { createExecutor } from "./executor.ts";
export type { CallRecord, CallVerdict, DelegateOptions, Executor, ExecutorOptions, ExecutorResult, RoutedTool } from "./executor.ts";
export { agentSubtask } from "./agent-task.ts";
export type { AgentSubtaskOptions } from "./agent-task.ts";
export { delegationTool } from "./delegation.ts";
export type { DelegationResult, SubAgent } from "./delegation.ts";
