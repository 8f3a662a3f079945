/**
 * agentcap: capability-secure authority for AI agents' tools. Everything a
 * user of the library needs is exported here; nothing else is public.
 */

/** Typed errors: one base class, a stable `code` on each. */
export {
  AgentcapError,
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
