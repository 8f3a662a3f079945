import type { LanguageModel } from "ai";
import type { z } from "zod";
import { defineTool, type Tool, type ToolSpec } from "../tools/index.js";
import { createExecutor, type CallRecord } from "./executor.js";
import { caretaker, defined } from "../kernel/internal.js";

/** The sub-agent a delegation call starts. */
export interface SubAgent {
  readonly name: string;
  readonly model: LanguageModel;
  readonly prompt: string;
  readonly instructions?: string;
  readonly maxSteps?: number;
}

/** What a delegation tool returns to the agent that called it. */
export interface DelegationResult {
  readonly agent: string;
  readonly text: string;
  readonly calls: readonly Pick<CallRecord, "tool" | "verdict" | "code">[];
}

/**
 * A tool that hands work to a sub-agent. The sub-agent runs under the
 * handler's capability, which the dispatcher has narrowed to exactly the
 * tool's needs, so it can never hold more than the needs name, nor more
 * than the caller holds: an orchestrator delegates its caller's authority,
 * never its own. `needs` must therefore list what the sub-agent will do,
 * including the `tool.call` of each tool it uses (see `subToolNeeds`).
 */
export function delegationTool<S extends z.ZodObject>(
  spec: ToolSpec<S> & { readonly agent: (input: z.output<S>) => SubAgent },
): Tool<z.input<S>, DelegationResult> {
  const { agent, ...toolSpec } = spec;
  return defineTool(toolSpec, async (input, capability, ctx) => {
    const sub = agent(input);
    // A caretaker link names the sub-agent in the lineage of everything it does.
    const named = caretaker(capability, { agent: sub.name });
    const result = await createExecutor({
      name: sub.name,
      model: sub.model,
      dispatcher: ctx.dispatcher,
      capability: named.capability,
      ...(ctx.tenant === null ? {} : { tenant: ctx.tenant }),
      ...defined({ instructions: sub.instructions, maxSteps: sub.maxSteps }),
    }).run(sub.prompt, { signal: ctx.signal });
    return {
      agent: sub.name,
      text: result.text,
      calls: result.calls.map(({ tool, verdict, code }) => ({ tool, verdict, code })),
    };
  });
}
