/*
 * The words grants are made of: operations, methods, revocation targets and
 * request actions. One list each, read by the grant schemas and by the
 * grant fast path alike, so the two can never disagree on a word.
 */

/** File operations a grant can allow. `stat` needs `list`; `append` and `mkdir` need `write`. */
export const FS_OPS = Object.freeze(["read", "write", "list", "delete"] as const);
export type FsOp = (typeof FS_OPS)[number];

export const HTTP_METHODS = Object.freeze(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const);
export type HttpMethod = (typeof HTTP_METHODS)[number];

export const DB_OPS = Object.freeze(["read", "create", "update", "delete"] as const);
export type DbOp = (typeof DB_OPS)[number];

/** What a grant can allow on the audit log: reading its events, checkpoints and lineage (the explorer asks for it). */
export const AUDIT_OPS = Object.freeze(["read"] as const);
export type AuditOp = (typeof AUDIT_OPS)[number];

/**
 * What a revocation can name: a token block, a link (and its subtree), a
 * principal, tenant, role or session, or a root signing key.
 */
export const REVOCATION_TARGETS = Object.freeze(["block", "link", "principal", "tenant", "role", "session", "key"] as const);
export type RevocationKind = (typeof REVOCATION_TARGETS)[number];

/** The actions a request can carry, as approval rules name them. */
export const REQUEST_ACTIONS = Object.freeze([
  "tool.call",
  "fs.read",
  "fs.write",
  "fs.list",
  "fs.delete",
  "http.request",
  "db.read",
  "db.create",
  "db.update",
  "db.delete",
  "exec",
  "revoke",
  "audit.read",
] as const);
export type RequestAction = (typeof REQUEST_ACTIONS)[number];

/** The most approvers an approval rule can ask to agree. */
export const MAX_QUORUM = 16;
