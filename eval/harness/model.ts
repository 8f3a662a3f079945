import type { AgentModel } from "./run.ts";

/*
 * A real model for the evaluation, named by environment variables: any
 * OpenAI-compatible chat-completions endpoint, through the AI SDK's
 * provider for them. Without the variables the scripted worst case runs
 * alone, as in CI.
 */

/** The variables read; AGENTCAP_EVAL_API_KEY is optional. */
export const MODEL_VARIABLES = ["AGENTCAP_EVAL_BASE_URL", "AGENTCAP_EVAL_MODEL", "AGENTCAP_EVAL_API_KEY"] as const;

/** The model the variables name, or null when none is configured; throws when only one of base URL and model is set. */
export async function modelFromEnvironment(variables: Readonly<Record<string, string | undefined>>): Promise<AgentModel | null> {
  const baseURL = variables.AGENTCAP_EVAL_BASE_URL ?? "";
  const id = variables.AGENTCAP_EVAL_MODEL ?? "";
  if (baseURL === "" && id === "") return null;
  if (baseURL === "" || id === "") throw new Error("a real model needs both AGENTCAP_EVAL_BASE_URL (an OpenAI-compatible endpoint, such as http://127.0.0.1:11434/v1) and AGENTCAP_EVAL_MODEL");
  const apiKey = variables.AGENTCAP_EVAL_API_KEY ?? "";
  const { createOpenAICompatible } = await import("@ai-sdk/openai-compatible");
  const provider = createOpenAICompatible({ name: "eval", baseURL, ...(apiKey === "" ? {} : { apiKey }) });
  return { id, model: provider.chatModel(id) };
}
