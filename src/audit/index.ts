/**
 * `agentcap/audit`: the audit log. One event per invocation, allowed or
 * denied, with the lineage and mint record of the authority used;
 * append-only, hash-chained, redacted, queryable by lineage. SQLite by
 * default, Postgres to share; each engine is loaded only when opened.
 */
export { openAuditStore } from "./open.js";
export type { AuditStoreOptions } from "./open.js";
export type { AuditStore } from "./store.js";
export { AUDIT_ACTIONS } from "./query.js";
export type { AuditQuery, AuditRecord } from "./query.js";
export type { VerifyOptions as AuditVerifyOptions, VerifyReport } from "./verify.js";
export type { TamperKind, TamperProblem } from "./chain-walker.js";
export { REDACTED } from "./redaction.js";
export type { RedactionPolicy } from "./redaction.js";
export type { ChainHead } from "./chain.js";
