import type { LanguageModel } from "ai";
import type { Grant } from "../kernel/index.js";
import { createExecutor, type CallRecord, type ExecutorResult } from "./executor.js";
import type { SubtaskSpec, TaskContext } from "./governor.js";
import { defined } from "../kernel/internal.js";

/** A subtask carried out by an agent: its grant and deadline, and the model and prompt it runs. */
export interface AgentSubtaskOptions {
  readonly name: string;
  readonly grant: Grant;
  readonly timeoutMs: number;
  readonly model: LanguageModel;
  readonly prompt: string;
  readonly instructions?: string;
  readonly maxSteps?: number;
  readonly tenant?: string;
  readonly onCall?: (record: CallRecord) => void;
}

/**
 * A subtask whose work is an Executor run under the task's capability, with
 * the task's critical tools routed through the Governor and the task's
 * signal stopping the loop at the deadline.
 */
export function agentSubtask(options: AgentSubtaskOptions): SubtaskSpec<ExecutorResult> {
  const { name, grant, timeoutMs, model, prompt, instructions, maxSteps, tenant, onCall } = options;
  return Object.freeze({
    name,
    grant,
    timeoutMs,
    run: (task: TaskContext) =>
      createExecutor({
        name,
        model,
        dispatcher: task.dispatcher,
        capability: task.capability,
        routedTools: task.criticalTools,
        ...defined({ instructions, maxSteps, tenant, onCall }),
      }).run(prompt, { signal: task.signal }),
  });
}
