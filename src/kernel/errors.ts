/**
 * Every error agentcap throws on purpose is an AgentcapError with a stable
 * `code`, so callers branch on the code rather than on message text. Every
 * class accepts `{ cause }`. The classes of all layers live here, so an
 * application can recognize any of them from the `agentcap` entry alone.
 */

/** Every code an AgentcapError can carry. */
export type AgentcapErrorCode =
  | "ERR_AGENTCAP"
  | DenialCode
  | "ERR_INVALID_INPUT"
  | "ERR_NOT_A_CAPABILITY"
  | "ERR_GRANT_SCHEMA_MISMATCH"
  | "ERR_UNMAPPABLE_SCHEMA"
  | "ERR_INVALID_TOKEN"
  | "ERR_INSUFFICIENT_SCOPE"
  | "ERR_LIMIT_EXCEEDED"
  | "ERR_AUDIT_FAILURE"
  | "ERR_MISSING_DEPENDENCY"
  | "ERR_FOREIGN_FAILURE"
  | "ERR_FILE_SYSTEM"
  | "ERR_HTTP_REQUEST_FAILED"
  | "ERR_TASK_TIMED_OUT"
  | "ERR_TASK_CANCELLED"
  | "ERR_SESSION_CLOSED"
  | "ERR_SANDBOX_VIOLATION"
  | "ERR_SANDBOX_TIMEOUT"
  | "ERR_SANDBOX_STOPPED"
  | "ERR_APPROVAL_REFUSED"
  | "ERR_VAULT_KEY_MISSING"
  | "ERR_VAULT_KEY_MISMATCH"
  | "ERR_UNKNOWN_PRINCIPAL"
  | "ERR_TOKEN_EXCHANGE_FAILED";

/** The base class: a stable `code`, a message a person can act on, and the underlying `cause` when there is one. */
export class AgentcapError extends Error {
  /** Stable, machine-readable identifier of the error kind. */
  readonly code: AgentcapErrorCode = "ERR_AGENTCAP";

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Details of a denial, carried by the denial errors and by a denied Decision. */
export interface DenialDetails {
  /** Id of the capability that was used. */
  readonly capabilityId: string;
  /** Index of the link that denied: 0 is the root, the last index the capability itself. */
  readonly link: number;
  /** Id of the capability at that link. */
  readonly linkId: string;
  /** The rule or condition that denied, such as `fs`, `expiresAt` or `budget.cost`. */
  readonly rule: string;
  /**
   * What the rule found, without naming the link, its principal or any
   * revocation reason: the words that may be shown to whoever used the
   * capability (a model, an MCP client), such as "does not allow fs.read of /x".
   */
  readonly because: string;
  /** For a windowed rate with no room left: when (ms since the epoch) the request would fit, if it ever can. */
  readonly retryAt?: number;
}

/** The denial codes a Decision can carry, one per denial class. */
export type DenialCode = "ERR_CAPABILITY_DENIED" | "ERR_EXPIRED" | "ERR_REVOKED" | "ERR_BUDGET_EXHAUSTED" | "ERR_APPROVAL_REQUIRED" | "ERR_STORE_UNAVAILABLE";

/** The base of the denials: the capability did not allow the request; `details` say which link and rule. */
export abstract class DenialError extends AgentcapError {
  abstract override readonly code: DenialCode;
  readonly details: DenialDetails;

  constructor(message: string, details: DenialDetails, options?: ErrorOptions) {
    super(message, options);
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

/**
 * Every link allows the request, but one of them requires human approval of
 * the exact call and the chain holds none: an approval flow (`createApprovals`)
 * can ask for it.
 */
export class ApprovalRequired extends DenialError {
  override readonly code = "ERR_APPROVAL_REQUIRED";
}

/**
 * Not a verdict on the capability: the token store that keeps its
 * revocations (and shared uses) could not be read, so whether it was revoked
 * is unknown now. Refused all the same (fail closed), and nothing was done;
 * the same request may be allowed once the store answers again, so it is
 * worth retrying. Never means the capability was revoked: that is Revoked.
 */
export class StoreUnavailable extends DenialError {
  override readonly code = "ERR_STORE_UNAVAILABLE";
}

/** True for the denials: CapabilityDenied, Expired, Revoked, BudgetExhausted, ApprovalRequired, StoreUnavailable. */
export function isDenial(error: unknown): error is DenialError {
  return error instanceof DenialError;
}

/** A grant, request, principal, option or argument is malformed; the message names the field. */
export class InvalidInput extends AgentcapError {
  override readonly code: "ERR_INVALID_INPUT" | "ERR_NOT_A_CAPABILITY" | "ERR_GRANT_SCHEMA_MISMATCH" | "ERR_UNMAPPABLE_SCHEMA" = "ERR_INVALID_INPUT";
}

/** Grants name models or fields a database's schema does not have; `problems` lists every one, each naming where it is. */
export class GrantSchemaMismatch extends InvalidInput {
  override readonly code = "ERR_GRANT_SCHEMA_MISMATCH";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`the grants do not fit the database's schema (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${problems.join("; ")}`);
    this.problems = Object.freeze([...problems]);
  }
}

/**
 * An application's model definitions (such as Drizzle tables) hold what
 * agentcap cannot express faithfully: a column type it does not read, a key
 * over several columns, a relation it cannot follow. `problems` lists every
 * one, each naming the table and column (or relation) and why.
 */
export class UnmappableSchema extends InvalidInput {
  override readonly code = "ERR_UNMAPPABLE_SCHEMA";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`the model definitions cannot be imported as they are (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${problems.join("; ")}`);
    this.problems = Object.freeze([...problems]);
  }
}

/** Something that is not a capability made by this kernel was passed where a capability is required. */
export class NotACapability extends InvalidInput {
  override readonly code = "ERR_NOT_A_CAPABILITY";
}

/** A serialized capability token failed to parse or verify. */
export class InvalidToken extends AgentcapError {
  override readonly code = "ERR_INVALID_TOKEN";
}

/** A valid access token lacks a scope the server requires; `scopes` lists what it needs (RFC 6750 insufficient_scope). */
export class InsufficientScope extends AgentcapError {
  override readonly code = "ERR_INSUFFICIENT_SCOPE";
  /** Every scope a token needs here. */
  readonly scopes: readonly string[];

  constructor(message: string, scopes: readonly string[], options?: ErrorOptions) {
    super(message, options);
    this.scopes = Object.freeze([...scopes]);
  }
}

/** A size, count or time limit of a resource was reached; `limit` names which. */
export class LimitExceeded extends AgentcapError {
  override readonly code = "ERR_LIMIT_EXCEEDED";
  /** The limit that was reached, such as `maxReadBytes` or `timeoutMs`. */
  readonly limit: string;

  constructor(message: string, limit: string, options?: ErrorOptions) {
    super(message, options);
    this.limit = limit;
  }
}

/**
 * The audit store could not record (or read) events. An invocation whose
 * event could not be written fails closed with it. `cause` carries the
 * store's own error.
 */
export class AuditFailure extends AgentcapError {
  override readonly code = "ERR_AUDIT_FAILURE";
}

/** An optional package an entry needs is not installed; `packageName` says which one to install. */
export class MissingDependency extends AgentcapError {
  override readonly code = "ERR_MISSING_DEPENDENCY";
  /** The npm package to install, such as `better-sqlite3`. */
  readonly packageName: string;

  constructor(packageName: string, neededFor: string, options?: ErrorOptions) {
    super(`${neededFor} needs the package ${packageName}: install it with \`npm install ${packageName}\``, options);
    this.packageName = packageName;
  }
}

/**
 * Code agentcap does not own (a tool handler, a database driver, an upstream
 * server) threw something that is not an AgentcapError. `cause` holds what
 * was thrown; the message is its message.
 */
export class ForeignFailure extends AgentcapError {
  override readonly code = "ERR_FOREIGN_FAILURE";

  /** Wraps `thrown`, keeping an AgentcapError as it is. */
  static of(thrown: unknown): AgentcapError {
    if (thrown instanceof AgentcapError) return thrown;
    return new ForeignFailure(thrown instanceof Error ? thrown.message : String(thrown), { cause: thrown });
  }
}

/**
 * The operating system refused a file operation that the capability allowed,
 * or the file is of a kind the operation does not handle. `errno` names the
 * cause: the system's code (ENOENT, EEXIST, ENOTEMPTY, ...), or EISDIR /
 * EFTYPE when agentcap itself refuses a directory or a special file.
 */
export class FileSystemError extends AgentcapError {
  override readonly code = "ERR_FILE_SYSTEM";
  /** The POSIX error code, such as `ENOENT`. */
  readonly errno: string;

  constructor(message: string, errno: string, options?: ErrorOptions) {
    super(message, options);
    this.errno = errno;
  }
}

/**
 * An authorized HTTP exchange failed for a reason outside agentcap's control:
 * the name did not resolve, the connection or TLS handshake failed, or the
 * server sent something unreadable. The underlying error is the `cause`.
 */
export class HttpRequestFailed extends AgentcapError {
  override readonly code = "ERR_HTTP_REQUEST_FAILED";
}

/**
 * A call waiting for human approval will not run: an approver denied it
 * (`status` "denied"), or it was not approved in time ("expired"). The
 * message says which, and, for a denial, the approver's reason.
 */
export class ApprovalRefused extends AgentcapError {
  override readonly code = "ERR_APPROVAL_REFUSED";
  readonly status: "denied" | "expired";

  constructor(message: string, status: "denied" | "expired", options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

/**
 * The credential vault has no key to encrypt or decrypt with: none is
 * configured, or the key file or environment variable it names is missing
 * or empty. The message names where the key was looked for.
 */
export class VaultKeyMissing extends AgentcapError {
  override readonly code = "ERR_VAULT_KEY_MISSING";
}

/**
 * The vault's key is not the one a stored credential was encrypted with, so
 * it cannot be decrypted. The message names the principal and origin, never
 * the ciphertext or either key.
 */
export class VaultKeyMismatch extends AgentcapError {
  override readonly code = "ERR_VAULT_KEY_MISMATCH";
}

/** A principal the configuration does not know was named (a credential set for a mistyped user, for example); `principal` says which. */
export class UnknownPrincipal extends AgentcapError {
  override readonly code = "ERR_UNKNOWN_PRINCIPAL";
  readonly principal: string;

  constructor(message: string, principal: string, options?: ErrorOptions) {
    super(message, options);
    this.principal = principal;
  }
}

/**
 * The caller's identity-provider token could not be exchanged (RFC 8693)
 * for the credential an upstream or an origin takes: the session has no
 * such token to exchange (`reason` "no-subject-token", as for a session
 * opened with a Biscuit token), the provider refused the exchange
 * ("refused", its standard OAuth error code in `oauthError` when it gave
 * one), or its token endpoint could not be reached or answered something
 * unusable ("unavailable"). The message names the target, never a token or
 * the provider's response body.
 */
export class TokenExchangeFailed extends AgentcapError {
  override readonly code = "ERR_TOKEN_EXCHANGE_FAILED";
  readonly reason: "no-subject-token" | "refused" | "unavailable";
  /** The provider's error code (RFC 6749 §5.2, RFC 8693 §2.2.2), such as "invalid_target"; null when it gave none this module knows. */
  readonly oauthError: string | null;

  constructor(message: string, reason: TokenExchangeFailed["reason"], oauthError: string | null = null) {
    super(message);
    this.reason = reason;
    this.oauthError = oauthError;
  }
}

/** A task ran past its deadline; its capabilities were revoked at that moment. */
export class TaskTimedOut extends AgentcapError {
  override readonly code = "ERR_TASK_TIMED_OUT";
}

/** A task was cancelled; its capabilities were revoked at that moment. */
export class TaskCancelled extends AgentcapError {
  override readonly code = "ERR_TASK_CANCELLED";
}

/** The session was closed: it issues nothing more, and everything it issued is revoked. */
export class SessionClosed extends AgentcapError {
  override readonly code = "ERR_SESSION_CLOSED";
}

/**
 * Sandboxed tool code reached for authority a sandbox does not have: a Node
 * global such as `process`, a module outside its allowlist, agentcap itself,
 * or something other than a capability it was given where one is required.
 * The message names what was reached for.
 */
export class SandboxViolation extends AgentcapError {
  override readonly code = "ERR_SANDBOX_VIOLATION";
}

/**
 * A sandboxed call ran past its time limit and was given up (its capability
 * revoked, so nothing it still does reaches anything), while the other calls
 * in its sandbox go on; or the loading of a tool module ran past its limit,
 * and its sandbox was stopped.
 */
export class SandboxTimeout extends AgentcapError {
  override readonly code = "ERR_SANDBOX_TIMEOUT";
  /** The limit that was reached, in milliseconds. */
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: ErrorOptions) {
    super(message, options);
    this.timeoutMs = timeoutMs;
  }
}

/** Why a sandbox stopped while a call was in it, or will not start for one. */
export type SandboxStopReason = "memory" | "timeout" | "crash" | "closed" | "restarts";

/**
 * The sandbox stopped before the call finished: it reached its memory
 * ceiling (`memory`), another call in it ran past its time limit and the
 * sandbox stopped responding (`timeout`), it failed (`crash`), or the
 * application closed it (`closed`); or it was stopped so often lately that
 * it is not started again for now (`restarts`). A call caught in a stopped
 * sandbox before it asked for anything outside is run again in a fresh one
 * instead; one that gets this error may have acted, and may be retried.
 * The next call starts a fresh sandbox, except after `closed`.
 */
export class SandboxStopped extends AgentcapError {
  override readonly code = "ERR_SANDBOX_STOPPED";
  readonly reason: SandboxStopReason;

  constructor(message: string, reason: SandboxStopReason, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}
