import { AgentcapError } from "../kernel/errors.ts";

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
