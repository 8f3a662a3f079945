/** What agentcap's own command line uses of the audit layer beyond its entry: printing and the defaults it names in its help. */
export { formatJsonLines, formatPruneReport, formatShadowGroups, formatTable, formatVerifyReport, printable, prunedNote, shadowGroups } from "./format.js";
export type { ShadowGroup } from "./format.js";
export { MAX_LIMIT } from "./query.js";
export { DEFAULT_SQLITE_PATH } from "./sqlite-store.js";
export { DEFAULT_POSTGRES_SCHEMA } from "./schema.js";
export { parseSignerKey } from "./checkpoint.js";
