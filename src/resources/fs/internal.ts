/**
 * What agentcap's own higher layers use of the fs resource beyond its entry:
 * the path canonicalization its requests are built from, and the look at a
 * caller's grants that tells a tool where it may resolve a path.
 */
export { lexicalPath, namesDirectory, realPath, realPathWithin } from "./paths.js";
export { lineageReaches } from "../lineage-reach.js";
