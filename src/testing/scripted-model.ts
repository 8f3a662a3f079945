import type * as AiTest from "ai/test";
import { InvalidInput } from "../kernel/index.js";
import { importOptional } from "../kernel/internal.js";

const { MockLanguageModelV4 } = await importOptional<typeof AiTest>("ai/test", "agentcap/testing's scripted model");
type MockLanguageModelV4 = AiTest.MockLanguageModelV4;

/*
 * A scripted agent: the AI SDK's own mock language model, answering each
 * step of the real tool loop from a script. Tests and demos use it to make an
 * agent do exactly what an injected prompt would make it do, with no network
 * and no model.
 */

type CallOptions = Parameters<MockLanguageModelV4["doGenerate"]>[0];
type GenerateResult = Awaited<ReturnType<MockLanguageModelV4["doGenerate"]>>;

/** One tool call the scripted model makes. */
export interface ScriptedCall {
  readonly tool: string;
  readonly input: unknown;
}

/** What the model answers in one step: tool calls, or its final text. */
export type ScriptedTurn = { readonly calls: readonly ScriptedCall[] } | { readonly text: string };

/** The result of one earlier tool call, as the model received it. */
export interface SeenResult {
  readonly tool: string;
  /** False when the tool failed or was refused; `value` is then the error text. */
  readonly ok: boolean;
  readonly value: unknown;
}

/** What a step function may look at: its index, and the results of the previous step's tool calls. */
export interface StepContext {
  readonly step: number;
  readonly results: readonly SeenResult[];
  readonly abortSignal: AbortSignal | undefined;
}

/** A step of a script: a fixed turn, or a function of what the model has seen so far. */
export type ScriptStep = ScriptedTurn | ((context: StepContext) => ScriptedTurn | Promise<ScriptedTurn>);

const USAGE: GenerateResult["usage"] = {
  inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 0, text: 0, reasoning: 0 },
};

/**
 * A language model that plays `steps` in order, one per model call; once the
 * script is over it answers with the text "(end of script)". Its
 * `doGenerateCalls` record exactly what the model was shown.
 */
export function scriptedModel(steps: readonly ScriptStep[], options: { readonly modelId?: string } = {}): MockLanguageModelV4 {
  const given: unknown = steps;
  if (!Array.isArray(given)) throw new InvalidInput("scriptedModel needs an array of steps");
  let next = 0;
  let calls = 0;
  return new MockLanguageModelV4({
    provider: "agentcap-script",
    modelId: options.modelId ?? "scripted",
    doGenerate: async (call: CallOptions): Promise<GenerateResult> => {
      const step = steps[next];
      next += 1;
      if (step === undefined) return { content: [{ type: "text", text: "(end of script)" }], finishReason: { unified: "stop", raw: undefined }, usage: USAGE, warnings: [] };
      const turn = typeof step === "function" ? await step({ step: next - 1, results: lastResults(call.prompt), abortSignal: call.abortSignal }) : step;
      if ("text" in turn) return { content: [{ type: "text", text: turn.text }], finishReason: { unified: "stop", raw: undefined }, usage: USAGE, warnings: [] };
      return {
        content: turn.calls.map((c) => {
          calls += 1;
          return { type: "tool-call" as const, toolCallId: `call-${calls}`, toolName: c.tool, input: JSON.stringify(c.input) };
        }),
        finishReason: { unified: "tool-calls", raw: undefined },
        usage: USAGE,
        warnings: [],
      };
    },
  });
}

function lastResults(prompt: CallOptions["prompt"]): SeenResult[] {
  const last = prompt.at(-1);
  if (last?.role !== "tool") return [];
  return last.content.flatMap((part) => {
    if (part.type !== "tool-result") return [];
    const out = part.output;
    const ok = out.type !== "error-text" && out.type !== "error-json" && out.type !== "execution-denied";
    const value = "value" in out ? out.value : out.type;
    return [{ tool: part.toolName, ok, value }];
  });
}
