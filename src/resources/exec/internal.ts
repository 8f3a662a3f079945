/**
 * What agentcap's own higher layers use of the exec resource beyond its
 * entry: the requests a run names, as written and on real paths, and the look
 * at a caller's grants that tells a tool where it may resolve them.
 */
export { resolvedRun, writtenRun } from "./canonical.js";
export { lineageReaches } from "../lineage-reach.js";
