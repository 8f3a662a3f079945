/**
 * What agentcap's own higher layers use of the tools layer beyond its entry:
 * the tenant a call acts for, and tools loaded from a tool module, whose
 * events record how their code runs, and the JSON text of a call's result.
 */
export { tenantFor } from "./plan.js";
export { defineModuleTool, rehostTool } from "./define.js";
export { resultText } from "./audit.js";
