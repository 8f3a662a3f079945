/**
 * The kernel: capabilities, grants, requests, decisions, the mint, clocks and
 * typed errors. This is the `agentcap` entry; it loads no engine (no SQLite,
 * Postgres, Biscuit, AI SDK or MCP SDK) and changes no global.
 */

/** Typed errors: one base class, a stable `code` on each; denials carry the link that denied. */
export {
  AgentcapError,
  ApprovalRefused,
  ApprovalRequired,
  AuditFailure,
  BudgetExhausted,
  CapabilityDenied,
  DenialError,
  Expired,
  FileSystemError,
  ForeignFailure,
  GrantSchemaMismatch,
  HttpRequestFailed,
  InsufficientScope,
  InvalidInput,
  InvalidToken,
  isDenial,
  LimitExceeded,
  MissingDependency,
  NotACapability,
  Revoked,
  SandboxStopped,
  SandboxTimeout,
  SandboxViolation,
  SessionClosed,
  StoreUnavailable,
  TaskCancelled,
  TaskTimedOut,
  TokenExchangeFailed,
  UnknownPrincipal,
  UnmappableSchema,
  VaultKeyMismatch,
  VaultKeyMissing,
} from "./errors.js";
export type { AgentcapErrorCode, DenialCode, DenialDetails, SandboxStopReason } from "./errors.js";

/** Clocks: expiry is checked against an injectable clock, or one captured when agentcap loads. */
export { createManualClock, systemClock } from "./clock.js";
export type { Clock, ManualClock } from "./clock.js";

/** Grants: plain data describing what one link allows; parsing names every bad field (InvalidInput). */
export { AUDIT_OPS, DB_OPS, FS_OPS, HTTP_METHODS, MAX_INCLUDE_DEPTH, MAX_QUORUM, parseConditions, parseGrant, REQUEST_ACTIONS, REVOCATION_TARGETS } from "./grant.js";
export type { FieldAction, FieldView } from "./field-actions.js";
export { ROW_OPS } from "./row-rules.js";
export type { RowOp, RowRule } from "./row-rules.js";
export type { ApprovalRule, ArgPattern, AuditOp, AutoSetSource, DbOp, DbRule, ExecRule, FsOp, FsRule, Grant, HttpMethod, HttpRule, IncludeRule, LinkConditions, RequestAction, RevocationKind, RevokeRule, Scalar } from "./grant.js";
/** A db rule value taken from the principal a chain is minted for (`{ principal: "user" }`, `{ principal: "tenant" }`), bound when each link is made. */
export type { PrincipalRef, RuleValue } from "./principal-refs.js";

/** Requests: the canonical description of one action, and what it acts on. */
export { requestTarget } from "./request.js";
export type { Action, AuditRequest, DbRequest, ExecRequest, FsRequest, HttpRequest, IncludeNeed, Request, RevokeRequest, ToolRequest } from "./request.js";

/** What a model or an MCP client is shown for an error: a code and words that name no link, principal or secret. */
export { callerMessage } from "./caller-text.js";
export type { CallerMessage } from "./caller-text.js";

/**
 * The attribute names of the OpenTelemetry spans agentcap makes for each tool
 * call and resource access, when the application registers a tracer
 * provider: identifiers, names, depths and codes, never arguments, paths,
 * values or credentials.
 */
export { SPAN_ATTRIBUTES } from "./tracing.js";

/** Decisions: allowed, or denied with the link that denied and why. */
export { denialError } from "./decision.js";
export type { Allowed, Decision, Denied, ShadowDenial } from "./decision.js";

/**
 * Capabilities: unforgeable, immutable, attenuable only downwards, revocable
 * through caretakers. Every operation is a function that refuses look-alikes
 * (NotACapability), so a capability handed over by untrusted code cannot lie.
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
  shadow,
} from "./capability.js";
export type { Revocable } from "./capability.js";
export type { CheckOptions, UseOptions } from "./evaluation.js";
export type { LinkSummary, MintRecord } from "./node.js";

/** Type-level reach: what a capability can possibly allow, checked at compile time. */
export type { FullReach, Meet, Reach, ReachOf, ReachOfRequests } from "./reach.js";

/** Shorthands for the common narrowings; each is an ordinary narrow or restrict. */
export { forSeconds, narrowToRow, onlyTool, readOnly, singleUse } from "./attenuation.js";

/** The mint: the application side, and the only source of root capabilities. */
export { createMint, keyMintId } from "./mint.js";
export type { Authenticator, Mint, MintOptions, MintPolicy, Principal } from "./mint.js";
export type { MintSubject, RevocationList } from "./ledger.js";

/** Audit events: one per invocation, with the lineage and mint record of the authority used. */
export { auditSubject, eventSink } from "./audit-sink.js";
export type { ApprovalRecord, ApprovalStage, AuditCompletion, AuditEvent, AuditIntent, AuditOutcome, AuditSink, AuditSubject, RowChanges, ToolCode } from "./audit-sink.js";

/**
 * Human approval bound to the exact call: a request an approval rule matches
 * waits for its approvers, then runs once under a capability that approves
 * exactly it, its arguments and needs, for at most 60 seconds.
 */
export { createApprovals, MAX_APPROVED_SECONDS } from "./approvals.js";
export type { ApprovalAsk, ApprovalRequirement, Approvals, ApprovalsOptions, ApprovalStatus, ApprovalView } from "./approvals.js";
/** Where approval requests are kept: in this process by default; every change is made against the version it read, so processes can share a store. */
export { isApprovalStore, memoryApprovalStore } from "./approval-store.js";
export type { ApprovalEntry, ApprovalStore } from "./approval-store.js";

/** Credentials a resource attaches to a request at the moment it is sent, per principal and origin; the caller never sees them. */
export type { CredentialSource } from "./credentials.js";
