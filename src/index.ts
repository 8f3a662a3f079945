/**
 * agentcap: capability-secure authority for AI agents' tools.
 *
 * This entry is the kernel (`agentcap/kernel` in the source): capabilities,
 * grants, the mint, decisions and typed errors, with no engine loaded. Each
 * layer has its own entry: `agentcap/fs`, `agentcap/http`, `agentcap/sql`,
 * `agentcap/exec`, `agentcap/tools`, `agentcap/audit`, `agentcap/token`,
 * `agentcap/runtime`, `agentcap/mcp` and `agentcap/testing`.
 */
export * from "./kernel/index.js";
