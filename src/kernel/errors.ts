/**
 * Every error agentcap throws on purpose is an AgentcapError with a stable
 * `code`, so callers can branch on the code rather than on message text.
 */
export class AgentcapError extends Error {
  /** Stable, machine-readable identifier of the error kind. */
  readonly code: string = "ERR_AGENTCAP";

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Details of a denial, carried by the denial errors below. */
export interface DenialDetails {
  /** Id of the capability that was used. */
  readonly capabilityId: string;
  /** Index of the link that denied: 0 is the root, the last index the capability itself. */
  readonly link: number;
  /** Id of the capability at that link. */
  readonly linkId: string;
  /** The rule or condition that denied, such as `fs`, `expiresAt` or `budget.cost`. */
  readonly rule: string;
}

abstract class DenialError extends AgentcapError {
  readonly details: DenialDetails;

  constructor(message: string, details: DenialDetails) {
    super(message);
    this.details = details;
  }
}

/** The capability does not grant the request. */
export class CapabilityDenied extends DenialError {
  override readonly code = "ERR_CAPABILITY_DENIED";
}

/** A link of the capability's chain has passed its `expiresAt`. */
export class Expired extends DenialError {
  override readonly code = "ERR_EXPIRED";
}

/** The capability, or one of its ancestors, has been revoked. */
export class Revoked extends DenialError {
  override readonly code = "ERR_REVOKED";
}

/** A use count or budget somewhere up the chain has no room left for the request. */
export class BudgetExhausted extends DenialError {
  override readonly code = "ERR_BUDGET_EXHAUSTED";
}

/** A grant, request, principal or argument is malformed; the message names the field. */
export class InvalidInput extends AgentcapError {
  override readonly code: string = "ERR_INVALID_INPUT";
}

/** Something that is not a capability made by this kernel was passed where a capability is required. */
export class NotACapability extends InvalidInput {
  override readonly code = "ERR_NOT_A_CAPABILITY";
}

/** A serialized capability token failed to parse or verify. */
export class InvalidToken extends AgentcapError {
  override readonly code = "ERR_INVALID_TOKEN";
}

/** The denial codes a Decision can carry, one per denial error class. */
export type DenialCode =
  | CapabilityDenied["code"]
  | Expired["code"]
  | Revoked["code"]
  | BudgetExhausted["code"];

/** A size, count or time limit of a resource was reached; `limit` names which. */
export class LimitExceeded extends AgentcapError {
  override readonly code = "ERR_LIMIT_EXCEEDED";
  constructor(
    message: string,
    /** The limit that was reached, such as `maxReadBytes` or `timeoutMs`. */
    readonly limit: string,
  ) {
    super(message);
  }
}

/**
 * The audit store could not record (or read) events. An invocation whose
 * event could not be written fails closed with it: its result is withheld.
 * `cause` carries the store's own error.
 */
export class AuditFailure extends AgentcapError {
  override readonly code = "ERR_AUDIT_FAILURE";
}
