/** What agentcap's own command line uses of the audit layer beyond its entry: printing and the defaults it names in its help. */
export { formatJsonLines, formatTable, formatVerifyReport } from "./format.ts";
export { MAX_LIMIT } from "./query.ts";
export { DEFAULT_SQLITE_PATH } from "./sqlite-store.ts";
export { DEFAULT_POSTGRES_SCHEMA } from "./schema.ts";
