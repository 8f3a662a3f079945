/**
 * `agentcap/sandbox`: tool code that can reach only what it is handed. A tool
 * module (an ES module exporting `defineTool(...)` values) is loaded into a
 * worker thread locked down with SES, where its only authority is each
 * call's capability and what the application endowed; its tools work with
 * `createDispatcher` like any other. SES and esbuild are optional peer
 * dependencies, loaded by the first `loadToolModule`. The sandbox's errors
 * (SandboxViolation, SandboxTimeout, SandboxStopped) are the kernel's.
 */
export { DEFAULT_SANDBOX_LIMITS, loadToolModule } from "./load.js";
export type { LoadToolModuleOptions, ToolModule } from "./load.js";
export type { ToolModuleSource } from "./compile.js";
export type { SandboxHealth, SandboxLimits } from "./module-sandbox.js";
export { loadBuiltinTools } from "./builtin.js";
export type { BuiltinResources, LoadBuiltinToolsOptions } from "./builtin.js";
export { defineTool } from "./format.js";
export type { Endowments, ModuleCapability, ModuleNeedsContext, ModuleTool, ModuleToolContext, ModuleToolHandler, ModuleToolSpec } from "./format.js";
