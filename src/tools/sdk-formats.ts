import type { JsonSchema } from "./define.js";
import type { CatalogEntry } from "./dispatcher.js";

/*
 * The catalog a capability reaches, written in the tool formats of the
 * common agent SDKs, as plain JSON: no SDK is loaded. Every format is made
 * from the same entries (name, description, JSON Schema of the input), so a
 * model shown tools through any of them sees exactly the tools its
 * capability reaches, and the calls it makes go back through the dispatcher,
 * which decides each one.
 */

/** OpenAI Chat Completions `tools`: `{ type: "function", function: { name, description, parameters } }`. */
export function openAiTools(catalog: readonly CatalogEntry[]) {
  return catalog.map((t) => ({ type: "function" as const, function: { name: t.name, description: t.description, parameters: t.inputSchema } }));
}

/** Anthropic Messages `tools`: `{ name, description, input_schema }`. */
export function anthropicTools(catalog: readonly CatalogEntry[]) {
  return catalog.map((t) => ({ name: t.name, description: t.description, input_schema: t.inputSchema }));
}

/**
 * Vercel AI SDK `tools`, keyed by name: `{ description, inputSchema }`, the
 * input schema as JSON Schema (wrap it with the SDK's `jsonSchema()`, and
 * give each an `execute` that calls the dispatcher).
 */
export function vercelAiTools(catalog: readonly CatalogEntry[]): Record<string, { readonly description: string; readonly inputSchema: JsonSchema }> {
  const out: Record<string, { readonly description: string; readonly inputSchema: JsonSchema }> = {};
  // Defined, not assigned: a tool named __proto__ stays a key.
  for (const t of catalog) Object.defineProperty(out, t.name, { value: { description: t.description, inputSchema: t.inputSchema }, enumerable: true });
  return out;
}

/** LangChain.js tool fields, as its `tool(fn, { name, description, schema })` takes them (schema as JSON Schema). */
export function langChainTools(catalog: readonly CatalogEntry[]) {
  return catalog.map((t) => ({ name: t.name, description: t.description, schema: t.inputSchema }));
}
