/**
 * `agentcap/tools`: tools as `(input, capability)` functions. The dispatcher
 * validates input, narrows the caller's capability to exactly the tool's
 * needs, authorizes, runs the handler and writes one audit event; the catalog
 * lists only the tools a capability reaches.
 */
/** bindArguments: a need made with exactly these arguments, so an approval of the call binds its database writes to them. */
export { bindArguments, defineTool, isTool, subToolNeeds } from "./define.js";
export type { AnyTool, CallOptions, JsonSchema, NeedsContext, NeedsFunction, SubCall, Tool, ToolContext, ToolHandler, ToolSpec } from "./define.js";
export { createDispatcher } from "./dispatcher.js";
export type { CatalogEntry, Dispatcher, DispatcherOptions } from "./dispatcher.js";
export type { CallPlan } from "./plan.js";
/** The catalog in the tool formats of OpenAI, Anthropic, the Vercel AI SDK and LangChain.js: plain JSON, from the same entries. */
export { anthropicTools, langChainTools, openAiTools, vercelAiTools } from "./sdk-formats.js";
export { grantForNeeds } from "./needs-grant.js";
export { fileTools } from "./builtin/files.js";
export type { FileToolOptions, FileTools } from "./builtin/files.js";
export { fetchTool } from "./builtin/fetch.js";
export type { FetchResult, FetchToolOptions } from "./builtin/fetch.js";
export { databaseTools } from "./builtin/database.js";
export type { DatabaseToolOptions, DatabaseTools } from "./builtin/database.js";
export { commandTool } from "./builtin/command.js";
export type { CommandToolOptions } from "./builtin/command.js";
