import type * as Ai from "ai";
import type { LanguageModel, ToolSet } from "ai";
import { callerMessage, InvalidInput, isCapability, isDenial, narrow, NotACapability, type Capability, type Grant } from "../kernel/index.js";
import { aiSdk } from "./ai-sdk.js";
import type { CatalogEntry, Dispatcher } from "../tools/index.js";
import { caretaker, defined } from "../kernel/internal.js";

/** How one tool call the model made ended: ran, refused by a capability, or failed otherwise. */
export type CallVerdict = "allowed" | "denied" | "failed";

/** One tool call an agent made, as the runtime saw it. */
export interface CallRecord {
  readonly agent: string;
  /** Whose capability the call used. */
  readonly principal: string;
  readonly tool: string;
  readonly input: unknown;
  readonly verdict: CallVerdict;
  /** The error code when the call did not succeed. */
  readonly code: string | null;
  /** What the model was told when the call did not succeed. */
  readonly message: string | null;
}

/** A tool the Executor shows the model although its own capability does not reach it: it is run by someone else (the Governor's re-mint). */
export interface RoutedTool {
  readonly entry: CatalogEntry;
  readonly call: (input: unknown) => Promise<unknown>;
}

/** What an Executor is built from. The capability is held by closure and never shown to the model. */
export interface ExecutorOptions {
  /** Names the agent in call records and in its sub-agents' lineage labels. */
  readonly name?: string;
  readonly model: LanguageModel;
  readonly dispatcher: Dispatcher;
  readonly capability: Capability;
  readonly instructions?: string;
  /** Model steps before the loop stops (default 10). */
  readonly maxSteps?: number;
  /** The tenant the agent's calls act for (default: the capability's only minted tenant). */
  readonly tenant?: string;
  /** Called once per tool call the model makes, after it is decided. */
  readonly onCall?: (record: CallRecord) => void;
  /** Extra tools run by another party (see RoutedTool). */
  readonly routedTools?: readonly RoutedTool[];
}

/** What one run produced. */
export interface ExecutorResult {
  readonly text: string;
  readonly steps: number;
  readonly calls: readonly CallRecord[];
}

/** A sub-agent's assignment: its own model and prompt, and the grant its capability is narrowed by. */
export interface DelegateOptions {
  readonly name: string;
  readonly grant: Grant;
  readonly model: LanguageModel;
  readonly prompt: string;
  readonly instructions?: string;
  readonly maxSteps?: number;
  readonly signal?: AbortSignal;
}

/** An agent loop bound to one capability. */
export interface Executor {
  readonly name: string;
  /** The tools the model will be shown: the catalog of the capability, plus routed tools. */
  tools(): readonly CatalogEntry[];
  /** Runs the AI SDK tool loop on `prompt`; `signal` aborts it. A refused tool call is reported to the model, never thrown. */
  run(prompt: string, options?: { readonly signal?: AbortSignal }): Promise<ExecutorResult>;
  /**
   * Runs a sub-agent whose capability is this one narrowed by `grant`
   * (never more than this agent holds) behind a forwarder revoked as soon
   * as the sub-agent finishes.
   */
  delegate(options: DelegateOptions): Promise<ExecutorResult>;
}

const DEFAULT_MAX_STEPS = 10;

/** Creates an Executor; throws InvalidInput (or NotACapability) for a bad option. */
export function createExecutor(options: ExecutorOptions): Executor {
  const o = readOptions(options);
  const principal = o.capability.mint.principal;
  const callOptions = o.tenant === undefined ? undefined : { tenant: o.tenant };

  const record = (records: CallRecord[], r: Omit<CallRecord, "agent" | "principal">): void => {
    const full = Object.freeze({ agent: o.name, principal, ...r });
    records.push(full);
    o.onCall?.(full);
  };

  /** Runs one call, records it, and turns a refusal into an error whose text is safe to show the model. */
  const invoke = async (records: CallRecord[], name: string, input: unknown, run: () => Promise<unknown>): Promise<unknown> => {
    try {
      // The model gets plain JSON data only: a result holding a capability fails here (capabilities refuse to serialize).
      const out = asJson(await run());
      record(records, { tool: name, input, verdict: "allowed", code: null, message: null });
      return out;
    } catch (e) {
      const refusal = forModel(e);
      record(records, { tool: name, input, verdict: refusal.verdict, code: refusal.name, message: refusal.message });
      throw refusal;
    }
  };

  /** The capability's catalog, then each routed tool it does not already list: what the model is shown, and who runs each. */
  const routes = (): { entry: CatalogEntry; call: (input: unknown) => Promise<unknown> }[] => {
    const own = o.dispatcher.catalog(o.capability, callOptions).map((entry) => ({
      entry,
      call: (input: unknown) => o.dispatcher.call(entry.name, input, o.capability, callOptions),
    }));
    return [...own, ...o.routedTools.filter((r) => !own.some((x) => x.entry.name === r.entry.name))];
  };

  const toolSet = (ai: typeof Ai, records: CallRecord[]): ToolSet =>
    // fromEntries defines own properties, so a tool named __proto__ cannot reach the prototype.
    Object.fromEntries(routes().map((r) => [r.entry.name, boundTool(ai, r.entry, (input) => invoke(records, r.entry.name, input, () => r.call(input)))]));

  const run = async (prompt: string, runOptions?: { readonly signal?: AbortSignal }): Promise<ExecutorResult> => {
    if (typeof prompt !== "string" || prompt.length === 0) throw new InvalidInput("run needs a non-empty prompt");
    const records: CallRecord[] = [];
    const ai = await aiSdk();
    const result = await ai.generateText({
      model: o.model,
      ...defined({ instructions: o.instructions }),
      prompt,
      tools: toolSet(ai, records),
      stopWhen: ai.stepCountIs(o.maxSteps),
      ...defined({ abortSignal: runOptions?.signal }),
      // A call to a tool the model was not shown is still decided and audited by the dispatcher (it is denied); the model is then told it is unavailable.
      repairToolCall: async ({ toolCall }) => {
        const input = parseJson(toolCall.input);
        await invoke(records, toolCall.toolName, input, () => o.dispatcher.call(toolCall.toolName, input, o.capability, callOptions)).catch(() => undefined);
        return null;
      },
    });
    return Object.freeze({ text: result.text, steps: result.steps.length, calls: Object.freeze(records) });
  };

  return Object.freeze({
    name: o.name,
    tools: () => Object.freeze(routes().map((r) => r.entry)),
    run,
    delegate: async (d: DelegateOptions): Promise<ExecutorResult> => {
      if (typeof d.name !== "string" || d.name.length === 0) throw new InvalidInput("delegate needs a name for the sub-agent");
      const lease = caretaker(narrow(o.capability, d.grant), { agent: d.name });
      try {
        const sub = createExecutor({
          name: d.name,
          model: d.model,
          dispatcher: o.dispatcher,
          capability: lease.capability,
          maxSteps: d.maxSteps ?? o.maxSteps,
          ...defined({ instructions: d.instructions, tenant: o.tenant, onCall: o.onCall }),
        });
        return await sub.run(d.prompt, defined({ signal: d.signal }));
      } finally {
        lease.revoke(`sub-agent ${d.name} has finished`);
      }
    },
  });
}

/** An AI SDK tool that shows the model the catalog entry and nothing else; the capability stays in `call`'s closure. */
function boundTool(ai: typeof Ai, entry: CatalogEntry, call: (input: unknown) => Promise<unknown>): ToolSet[string] {
  return ai.tool({
    description: entry.description,
    // The dispatcher validates with the tool's zod schema; this one is only what the model is shown.
    inputSchema: ai.jsonSchema(entry.inputSchema as Parameters<typeof Ai.jsonSchema>[0]),
    execute: (input: unknown) => call(input),
  });
}

/** An error the model may read: the code and the reason, without capability or link identifiers. */
class ToolRefusal extends Error {
  constructor(
    readonly verdict: CallVerdict,
    code: string,
    message: string,
  ) {
    super(message);
    this.name = code;
  }
}

function forModel(e: unknown): ToolRefusal {
  const { code, text } = callerMessage(e);
  return new ToolRefusal(isDenial(e) ? "denied" : "failed", code, text);
}

/** `value` as the JSON data a model would receive; an absent result is null. */
function asJson(value: unknown): unknown {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function readOptions(options: ExecutorOptions) {
  const own = <K extends keyof ExecutorOptions>(k: K): ExecutorOptions[K] | undefined => (Object.hasOwn(options, k) ? options[k] : undefined);
  const capability = own("capability");
  if (!isCapability(capability)) throw new NotACapability("an Executor needs the capability its tools run under");
  const dispatcher = own("dispatcher");
  if (dispatcher === undefined) throw new InvalidInput("an Executor needs a dispatcher");
  const model = own("model");
  if (model === undefined) throw new InvalidInput("an Executor needs a language model");
  const maxSteps = own("maxSteps") ?? DEFAULT_MAX_STEPS;
  if (!Number.isInteger(maxSteps) || maxSteps < 1 || maxSteps > 1000) throw new InvalidInput(`maxSteps must be an integer from 1 to 1000, got ${String(maxSteps)}`);
  const name = own("name") ?? "agent";
  if (typeof name !== "string" || name.length === 0 || name.length > 128) throw new InvalidInput("name must be a string of 1 to 128 characters");
  return {
    name,
    model,
    dispatcher,
    capability,
    maxSteps,
    instructions: own("instructions"),
    tenant: own("tenant"),
    onCall: own("onCall"),
    routedTools: own("routedTools") ?? [],
  };
}
