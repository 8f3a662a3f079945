/**
 * `agentcap/tools`: tools as `(input, capability)` functions. The dispatcher
 * validates input, narrows the caller's capability to exactly the tool's
 * needs, authorizes, runs the handler and writes one audit event; the catalog
 * lists only the tools a capability reaches.
 */
export { defineTool, isTool, subToolNeeds } from "./define.ts";
export type { AnyTool, CallOptions, JsonSchema, NeedsContext, NeedsFunction, SubCall, Tool, ToolContext, ToolHandler, ToolSpec } from "./define.ts";
export { createDispatcher } from "./dispatcher.ts";
export type { CatalogEntry, Dispatcher, DispatcherOptions } from "./dispatcher.ts";
export type { CallPlan } from "./plan.ts";
export { grantForNeeds } from "./needs-grant.ts";
export { fileTools } from "./builtin/files.ts";
export type { FileToolOptions, FileTools } from "./builtin/files.ts";
export { fetchTool } from "./builtin/fetch.ts";
export type { FetchResult, FetchToolOptions } from "./builtin/fetch.ts";
export { databaseTools } from "./builtin/database.ts";
export type { DatabaseToolOptions, DatabaseTools } from "./builtin/database.ts";
export { commandTool } from "./builtin/command.ts";
export type { CommandToolOptions } from "./builtin/command.ts";
