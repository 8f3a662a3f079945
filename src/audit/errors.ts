import { AgentcapError } from "../kernel/errors.ts";

/**
 * The audit store could not record (or read) events. A `write` that rejects
 * with it means the event is not in the log, so the invocation that needed it
 * must fail closed; `cause` carries the store's own error.
 */
export class AuditFailure extends AgentcapError {
  override readonly code = "ERR_AUDIT_FAILURE";
}
