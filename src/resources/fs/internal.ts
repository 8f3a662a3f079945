/** What agentcap's own higher layers use of the fs resource beyond its entry: the path canonicalization its requests are built from. */
export { lexicalPath, realPath } from "./paths.js";
