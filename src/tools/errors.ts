import { AgentcapError } from "../kernel/errors.ts";

/**
 * The audit sink refused or failed to record an invocation. The call fails
 * closed: its result is withheld, because an action nobody can account for
 * must not look like a success. `cause` is the sink's own error.
 */
export class AuditFailed extends AgentcapError {
  override readonly code = "ERR_AUDIT_FAILED";
}
