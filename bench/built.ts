/*
 * The built package (dist/), as users run it: `npm run bench` builds first,
 * and the hot-path sections (kernel, fs, sql, tools) measure this code rather
 * than the TypeScript source compiled on the fly by tsx, which adds its own
 * overhead to every call. The types are the source's, which dist/ is built from.
 */

const dist = (entry: string) => new URL(`../dist/${entry}`, import.meta.url).href;

export const kernel = (await import(dist("index.js"))) as typeof import("../src/index.ts");
export const fsEntry = (await import(dist("resources/fs/index.js"))) as typeof import("../src/resources/fs/index.ts");
export const sqlEntry = (await import(dist("resources/sql/index.js"))) as typeof import("../src/resources/sql/index.ts");
export const toolsEntry = (await import(dist("tools/index.js"))) as typeof import("../src/tools/index.ts");

/** Entries whose engines (Biscuit, SQLite, the MCP SDK) only some sections need, loaded when such a section starts. */
export const lazyEntries = {
  audit: () => import(dist("audit/index.js")) as Promise<typeof import("../src/audit/index.ts")>,
  token: () => import(dist("token/index.js")) as Promise<typeof import("../src/token/index.ts")>,
  mcp: () => import(dist("mcp/index.js")) as Promise<typeof import("../src/mcp/index.ts")>,
};
