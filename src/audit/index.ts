/**
 * `agentcap/audit`: the audit log. One event per invocation, allowed or
 * denied, with the lineage and mint record of the authority used;
 * append-only, hash-chained, redacted, queryable by lineage. SQLite by
 * default, Postgres to share; each engine is loaded only when opened.
 */
export { openAuditStore } from "./open.ts";
export type { AuditStoreOptions } from "./open.ts";
export type { AuditStore } from "./store.ts";
export { AUDIT_ACTIONS } from "./query.ts";
export type { AuditQuery, AuditRecord } from "./query.ts";
export type { VerifyOptions as AuditVerifyOptions, VerifyReport } from "./verify.ts";
export type { TamperKind, TamperProblem } from "./chain-walker.ts";
export { REDACTED } from "./redaction.ts";
export type { RedactionPolicy } from "./redaction.ts";
export type { ChainHead } from "./chain.ts";
