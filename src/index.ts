/**
 * agentcap: capability-secure authority for AI agents' tools. Everything a
 * user of the library needs is exported here; nothing else is public.
 */

/** Typed errors: one base class, a stable `code` on each. */
export {
  AgentcapError,
  AuditFailure,
  BudgetExhausted,
  CapabilityDenied,
  Expired,
  InvalidInput,
  InvalidToken,
  LimitExceeded,
  NotACapability,
  Revoked,
} from "./kernel/errors.ts";
export type { DenialCode, DenialDetails } from "./kernel/errors.ts";

/** Clocks: expiry is always checked against an injectable clock. */
export { createManualClock, systemClock } from "./kernel/clock.ts";
export type { Clock, ManualClock } from "./kernel/clock.ts";

/** Grants: plain data describing what one link allows; `parseGrant` validates one and names every bad field. */
export { parseGrant, DB_OPS, FS_OPS, HTTP_METHODS } from "./kernel/grant.ts";
export type { ArgPattern, DbOp, DbRule, ExecRule, FsOp, FsRule, Grant, HttpMethod, HttpRule, LinkConditions, Scalar } from "./kernel/grant.ts";

/** Requests: the canonical description of one action. */
export { requestTarget } from "./kernel/request.ts";
export type { Action, DbRequest, ExecRequest, FsRequest, HttpRequest, Request, ToolRequest } from "./kernel/request.ts";

/** Decisions: allowed, or denied with the link that denied and why. */
export { denialError } from "./kernel/decision.ts";
export type { Allowed, Decision, Denied } from "./kernel/decision.ts";

/**
 * Capabilities: unforgeable, immutable, attenuable only downwards, revocable
 * through caretakers. `authorize` charges uses and budgets; `check` does not.
 */
export {
  assertAuthorized,
  authorize,
  Capability,
  check,
  clockTime,
  expiresAt,
  isCapability,
  narrow,
  restrict,
  revocable,
  revocationSignal,
} from "./kernel/capability.ts";
export type { LinkSummary, MintRecord, Revocable, UseOptions } from "./kernel/capability.ts";

/** Type-level reach: what a capability can possibly allow, checked at compile time. */
export type { FullReach, Meet, Reach, ReachOf } from "./kernel/reach.ts";

/** Shorthands for the common narrowings; each is an ordinary narrow or restrict. */
export { forSeconds, narrowToRow, onlyTool, readOnly, singleUse } from "./kernel/attenuation.ts";

/** The mint: the application side, and the only source of root capabilities. */
export { createMint } from "./kernel/mint.ts";
export type { Authenticator, Mint, MintOptions, MintPolicy, Principal } from "./kernel/mint.ts";

/** IP address classes used by HTTP confinement. */
export { classifyAddress } from "./kernel/address.ts";
export type { AddressClass } from "./kernel/address.ts";

/** Audit events: one per invocation, with the lineage and mint record of the authority used. */
export { auditSubject } from "./kernel/audit-sink.ts";
export type { AuditEvent, AuditOutcome, AuditSink, AuditSubject } from "./kernel/audit-sink.ts";

/** Audit stores: append-only, hash-chained, queryable by lineage; SQLite by default, Postgres to share. */
export { openAuditStore } from "./audit/open.ts";
export type { AuditStoreOptions } from "./audit/open.ts";
export type { AuditStore } from "./audit/store.ts";
export { AUDIT_ACTIONS } from "./audit/query.ts";
export type { AuditQuery, AuditRecord } from "./audit/query.ts";
export type { VerifyOptions as AuditVerifyOptions, VerifyReport } from "./audit/verify.ts";
export type { TamperKind, TamperProblem } from "./audit/chain-walker.ts";
export { REDACTED } from "./audit/redaction.ts";
export type { RedactionPolicy } from "./audit/redaction.ts";
export { formatJsonLines, formatTable, formatVerifyReport } from "./audit/format.ts";
export { DEFAULT_SQLITE_PATH } from "./audit/sqlite-store.ts";
export { DEFAULT_POSTGRES_SCHEMA } from "./audit/schema.ts";

/** Confined file system: canonicalize (symlinks included), authorize, then act; no handle ever leaves it. */
export { createFileSystem, FileSystemError } from "./resources/fs.ts";
export type { DirEntry, EntryType, FileInfo, FileSystem, FileSystemOptions, FsCallOptions, MkdirOptions } from "./resources/fs.ts";

/** Confined HTTP: every hop canonicalized, resolved, authorized, and connected to the checked address only. */
export { createHttpClient, HttpRequestFailed, systemResolver } from "./resources/http.ts";
export type { HttpClient, HttpClientOptions, HttpInit, HttpResponse, Resolver } from "./resources/http.ts";

/** Confined SQL: structured queries only, row scope from the capability, parameterized SQL on SQLite or Postgres. */
export { createSqlDatabase } from "./resources/sql/database.ts";
export type { DbCapability, Row, SqlConnection, SqlDatabase, SqlDatabaseOptions, SqlLimits, WriteResult } from "./resources/sql/database.ts";
export type { CreateQuery, DeleteQuery, FilterOps, OrderBy, ReadQuery, UpdateQuery, Where } from "./resources/sql/query.ts";
export type { FieldSpec, FieldType, ModelSpec, SchemaSpec } from "./resources/sql/schema.ts";

/** Confined subprocesses: argv only, no shell, scrubbed environment, limits, killed on revocation. */
export { createExec, DEFAULT_EXEC_LIMITS } from "./resources/exec.ts";
export type { Exec, ExecConfig, ExecLimits, ExecReach, ExecResult, OutputEncoding, RunOptions } from "./resources/exec.ts";

/** Tools: `(input, capability)` functions, automatically attenuated to their needs, audited, listed per capability. */
export { defineTool, isTool, subToolNeeds } from "./tools/define.ts";
export type {
  AnyTool,
  CallOptions,
  JsonSchema,
  NeedsContext,
  NeedsFunction,
  SubCall,
  Tool,
  ToolContext,
  ToolHandler,
  ToolSpec,
} from "./tools/define.ts";
export { createDispatcher } from "./tools/dispatcher.ts";
export type { CatalogEntry, Dispatcher, DispatcherOptions } from "./tools/dispatcher.ts";
export type { CallPlan } from "./tools/plan.ts";
export { grantForNeeds } from "./tools/needs-grant.ts";
export { fileTools } from "./tools/builtin/files.ts";
export type { FileToolOptions, FileTools } from "./tools/builtin/files.ts";
export { fetchTool } from "./tools/builtin/fetch.ts";
export type { FetchResult, FetchToolOptions } from "./tools/builtin/fetch.ts";
export { databaseTools } from "./tools/builtin/database.ts";
export type { DatabaseToolOptions, DatabaseTools } from "./tools/builtin/database.ts";
export { commandTool } from "./tools/builtin/command.ts";
export type { CommandToolOptions } from "./tools/builtin/command.ts";

/** Runtime: Session → Governor → Executor, with task-scoped revocable capabilities and sub-agent delegation. */
export { authenticateSession, openSession } from "./runtime/session.ts";
export type { OpenSessionOptions, Session } from "./runtime/session.ts";
export { createGovernor } from "./runtime/governor.ts";
export type {
  CriticalCheck,
  CriticalOptions,
  Governor,
  GovernorOptions,
  SubtaskOutcome,
  SubtaskSpec,
  TaskContext,
  TaskHandle,
  TaskStatus,
} from "./runtime/governor.ts";
export { createExecutor } from "./runtime/executor.ts";
export type { CallRecord, CallVerdict, DelegateOptions, Executor, ExecutorOptions, ExecutorResult, RoutedTool } from "./runtime/executor.ts";
export { agentSubtask } from "./runtime/agent-task.ts";
export type { AgentSubtaskOptions } from "./runtime/agent-task.ts";
export { delegationTool } from "./runtime/delegation.ts";
export type { DelegationResult, SubAgent } from "./runtime/delegation.ts";
export { SessionClosed, TaskCancelled, TaskTimedOut } from "./runtime/errors.ts";

/** Tokens: capabilities as Biscuit v3 tokens, attenuable offline, verified with the issuer's public keys. */
export { attenuate, createTokenMint, createVerifier, readToken, revokeToken, toToken, verify, verifyShared } from "./token/token.ts";
export type { AttenuateOptions, TokenMint, TokenMintOptions, VerifiedBlock, Verifier, VerifyOptions } from "./token/token.ts";
export { generateKeyPair } from "./token/biscuit.ts";
export type { PublicKeySet } from "./token/keys.ts";
export type { RevocationTarget, TokenStore } from "./token/store.ts";
export { openSqliteTokenStore } from "./token/sqlite-store.ts";
export { openPostgresTokenStore } from "./token/postgres-store.ts";
export type { PostgresStoreOptions } from "./token/postgres-store.ts";

/** The MCP gateway: sessions bound to tokens, tools listed and called per capability, upstream MCP servers guarded. */
export { loadGatewayConfig, parseGatewayConfig } from "./mcp/config.ts";
export type { ArgumentKind, AuditConfig, GatewayConfig, StoreConfig, UpstreamConfig } from "./mcp/config.ts";
export { openGateway } from "./mcp/gateway.ts";
export type { Gateway, OpenGatewayOptions } from "./mcp/gateway.ts";
export { listenHttp, MCP_PATH, REVOKE_PATH } from "./mcp/http.ts";
export type { HttpGateway } from "./mcp/http.ts";
export { serveStdio } from "./mcp/stdio.ts";
export { guardUpstream, upstreamTransport, UPSTREAM_SEPARATOR } from "./mcp/upstream.ts";
export type { GuardedUpstream } from "./mcp/upstream.ts";
export { configuredPolicy, TENANT_PLACEHOLDER } from "./mcp/policy.ts";
