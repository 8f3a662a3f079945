import { randomUUID } from "node:crypto";
import { callerMessage, type AuditEvent, type Principal } from "agentcap";
import type { LanguageModel } from "ai";
import { createExecutor, createGovernor, openSession, type CallRecord, type RoutedTool, type TaskContext } from "agentcap/runtime";
import { scriptedModel } from "agentcap/testing";
import { MAX_AGENT_STEPS, startRunLog, worstCaseAgent, type AgentCall } from "./agent.ts";
import { injectionText } from "./injection.ts";
import { denialsOf, type DenialRecord, type Recorder } from "./recorder.ts";
import type { AttackClass, Environment, InjectionTask, Suite, TaskRequest, UserTask } from "./types.ts";

/*
 * One run: a fresh environment (the injection planted, or not), a session
 * for the user, and the worst-case agent doing the user's task. Defended
 * ("agentcap"), the application mints the user's root, the Governor gives
 * the task the grant the application's policy derives from the request, and
 * the agent holds only that. Undefended, the same agent holds the user's
 * root capability itself, as an application without per-task authority
 * would give its agent everything the user may do.
 */

export type Mode = "agentcap" | "undefended";

/** A real language model to run the tasks with, instead of the scripted worst case. */
export interface AgentModel {
  /** How reports name it. */
  readonly id: string;
  readonly model: LanguageModel;
}

/** One refused call the injection asked for. */
export interface Refusal {
  readonly tool: string;
  readonly code: string;
  readonly message: string;
  /** The audit's account of the denial, when the capability refused (rather than the Governor or the critical-operation policy). */
  readonly denial: DenialRecord | null;
}

export interface RunResult {
  readonly suite: string;
  readonly mode: Mode;
  /** "scripted" (the worst case), or the real model's id. */
  readonly agent: string;
  readonly userTask: string;
  readonly injectionTask: string | null;
  readonly attackClass: AttackClass | null;
  readonly utility: boolean;
  /** Null when no injection was planted. */
  readonly attackSucceeded: boolean | null;
  /** Whether the agent read the injected text at all (null for a real model: what it read is not tracked). */
  readonly exposed: boolean | null;
  readonly injectedCalls: number;
  readonly refused: readonly Refusal[];
  readonly answer: string;
  /** How each tool called in the run ran, as its audit events record it: "sandboxed", "trusted", or "in process" (an ordinary tool of the application). */
  readonly toolCode: Readonly<Record<string, ToolRun>>;
}

/** Where a tool's handler ran. */
export type ToolRun = "sandboxed" | "trusted" | "in process";

/** A tool the application gives every task: asking the Governor for one more call, which the (worst-case) user approves whatever it is. */
function requestAccessTool(ctx: TaskContext): RoutedTool {
  return {
    entry: {
      name: "request_access",
      description: "Ask for permission to make one call that your task does not cover; the user approves it.",
      inputSchema: { type: "object", properties: { tool: { type: "string" }, input: { type: "object" } }, required: ["tool", "input"], additionalProperties: false },
    },
    call: async (given) => {
      const { tool, input } = given as { tool: string; input: unknown };
      const once = await ctx.escalate(tool, input, 30);
      return ctx.dispatcher.call(tool, input, once);
    },
  };
}

export async function runOnce<E extends Environment>(
  env: E,
  recorder: Recorder,
  suite: Suite<E>,
  task: UserTask<E>,
  injection: InjectionTask<E> | null,
  mode: Mode,
  real: AgentModel | null = null,
): Promise<RunResult> {
  await env.reset(injection === null ? null : injectionText(injection));
  recorder.take();
  const principal = userOf(env, task);
  const session = openSession({ mint: env.mint, principal, id: `${suite.name}-${randomUUID().slice(0, 8)}` });
  const log = startRunLog();
  const agent = worstCaseAgent(task.steps);
  const records: CallRecord[] = [];
  const policyRefusals: PolicyRefusal[] = [];
  const executorOptions = {
    name: "assistant",
    model: real?.model ?? scriptedModel(agent.steps),
    instructions: suite.context(env),
    dispatcher: env.dispatcher,
    maxSteps: MAX_AGENT_STEPS,
    onCall: (r: CallRecord) => {
      records.push(r);
    },
    ...(principal.tenants?.length === 1 ? { tenant: principal.tenants[0] as string } : {}),
  };
  let answer: string;
  try {
    const governor = mode === "agentcap" ? createGovernor({ session, dispatcher: env.dispatcher, ...(env.critical === undefined ? {} : { critical: env.critical }) }) : null;
    /** Runs one task: under the Governor with the grant its request earns, or (undefended) with the user's root. */
    const runTask = async (name: string, request: TaskRequest, options: typeof executorOptions, prompt: string): Promise<string> => {
      if (governor === null) return (await createExecutor({ ...options, capability: session.capability }).run(prompt)).text;
      const handle = governor.spawn({
        name,
        grant: env.taskGrant(request, principal),
        timeoutMs: 60_000,
        run: (ctx) =>
          createExecutor({ ...options, capability: ctx.capability, routedTools: [...ctx.criticalTools.map((r) => watched(r, policyRefusals)), requestAccessTool(ctx)] }).run(prompt),
      });
      env.onTask?.(handle.id, request);
      return (await handle.result).text;
    };
    answer = await runTask(task.id, task.request, executorOptions, task.prompt).catch((e: unknown) => `the run failed: ${callerMessage(e).text}`);
    const followUp = env.followUp;
    if (followUp !== undefined) {
      const model = scriptedModel([{ calls: followUp.calls }, { text: "done" }]);
      let allowed = 0;
      const count = (r: CallRecord) => {
        if (r.verdict === "allowed") allowed += 1;
      };
      await runTask(followUp.name, followUp.request, { ...executorOptions, name: followUp.name, model, onCall: count }, followUp.name).catch(() => undefined);
      followUp.done(allowed === followUp.calls.length);
    }
  } finally {
    session.close("the run is over");
  }
  const events = recorder.take();
  const denials = denialsOf(events);
  // A real model's calls are not sorted into the user's and the injection's: every refused call counts.
  const injected = real === null ? log.calls.filter((c) => c.origin === "injection") : records.map((r) => ({ origin: "injection" as const, tool: r.tool, input: r.input, ok: r.verdict === "allowed", value: null }));
  return {
    suite: suite.name,
    mode,
    agent: real?.id ?? "scripted",
    userTask: task.id,
    injectionTask: injection?.id ?? null,
    attackClass: injection?.class ?? null,
    utility: await task.utility(env, answer),
    attackSucceeded: injection === null ? null : await injection.success(env),
    exposed: real === null ? log.exposed : null,
    injectedCalls: injected.length,
    refused: refusals(injected, records, denials, policyRefusals),
    answer,
    toolCode: toolRuns(events),
  };
}

/** How each tool that was called ran, from the dispatcher's events of the calls it allowed. */
function toolRuns(events: readonly AuditEvent[]): Record<string, ToolRun> {
  const runs: Record<string, ToolRun> = {};
  for (const e of events) if (e.request.action === "tool.call" && e.decision.allowed && e.tool !== null) runs[e.tool] = e.toolCode ?? "in process";
  return runs;
}

function userOf(env: Environment, task: { readonly id: string; readonly user?: string }): Principal {
  const name = task.user ?? Object.keys(env.users)[0];
  const user = name === undefined ? undefined : env.users[name];
  if (user === undefined) throw new Error(`task ${task.id} names no user of the suite`);
  return user;
}

/** A critical call the application's policy refused: the runtime then dispatches it with the task's own capability, which denies it. */
interface PolicyRefusal {
  readonly tool: string;
  readonly input: string;
}

const POLICY_REFUSED = "the critical-operation policy refused it";

/** A critical tool's route that notes the calls its policy refused. */
function watched(route: RoutedTool, refused: PolicyRefusal[]): RoutedTool {
  return {
    entry: route.entry,
    call: async (input) => {
      try {
        return await route.call(input);
      } catch (e) {
        if (e instanceof Error && e.message.includes(POLICY_REFUSED)) refused.push({ tool: route.entry.name, input: JSON.stringify(input) });
        throw e;
      }
    },
  };
}

/** The injection's calls that did not go through, each with what refused it. */
function refusals(injected: readonly AgentCall[], records: readonly CallRecord[], denials: readonly DenialRecord[], byPolicy: readonly PolicyRefusal[]): Refusal[] {
  const policyRefused = [...byPolicy];
  const unused = [...records];
  const unusedDenials = [...denials];
  return injected.flatMap((call) => {
    const at = unused.findIndex((r) => r.tool === call.tool && JSON.stringify(r.input) === JSON.stringify(call.input));
    const record = at < 0 ? undefined : unused.splice(at, 1)[0];
    if (record?.verdict === "allowed" || (record === undefined && call.ok)) return [];
    // A sub-agent's calls are not the executor's records: the audit's denials account for them.
    const d = record === undefined || record.verdict === "denied" ? unusedDenials.findIndex((x) => x.tool === call.tool || x.tool === null) : -1;
    const found = d < 0 ? null : (unusedDenials.splice(d, 1)[0] ?? null);
    const p = policyRefused.findIndex((x) => x.tool === call.tool && x.input === JSON.stringify(call.input));
    const denial = p >= 0 && found !== null ? { ...found, link: "critical-operation policy (no re-mint)", rule: "policy", because: POLICY_REFUSED } : found;
    if (p >= 0) policyRefused.splice(p, 1);
    if (record === undefined && denial === null) return [];
    return [{ tool: call.tool, code: record?.code ?? denial?.code ?? "", message: record?.message ?? `the capability ${denial?.because ?? ""}`, denial }];
  });
}
