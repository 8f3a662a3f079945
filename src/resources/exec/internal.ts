/** What agentcap's own higher layers use of the exec resource beyond its entry: the canonical program and directory its requests name. */
export { resolveDirectory, resolveProgram } from "./canonical.js";
