import { labelsOf, type Capability } from "./capability.js";
import type { LinkSummary, MintRecord } from "./node.js";
import type { Decision } from "./decision.js";
import { ForeignFailure } from "./errors.js";
import type { Request } from "./request.js";

/** Which authority was used: the capability, its full lineage and its root's mint record. */
export interface AuditSubject {
  readonly capabilityId: string;
  readonly capabilityHash: string;
  /** Root first; each link's id, hash, grant and conditions. */
  readonly lineage: readonly LinkSummary[];
  readonly mint: MintRecord;
  /** From the nearest link labelled by its caretaker, if any. */
  readonly sessionId: string | null;
  readonly taskId: string | null;
}

/** How an invocation ended. `resultBytes` is the size of what was returned, never its content. */
export type AuditOutcome =
  | {
      readonly ok: true;
      readonly resultBytes: number | null;
      /** For a revocation: what this process's live capabilities, tokens and sessions it reached (other processes see it too). */
      readonly reached?: { readonly capabilities: number; readonly tokens: number; readonly sessions: number };
      /** For a revocation: why, as recorded in the token store. */
      readonly reason?: string;
    }
  | { readonly ok: false; readonly errorCode: string; readonly message: string };

/**
 * How the code of a tool loaded from a tool module runs: confined in a
 * sandbox, or in the application's own process because the application
 * opted out with `trusted: true`.
 */
export type ToolCode = "sandboxed" | "trusted";

/**
 * One invocation, allowed or denied: a tool call, or one access to a
 * resource. Resources and the dispatcher write exactly one per invocation,
 * before the result is returned.
 */
export interface AuditEvent {
  readonly id: string;
  /** Milliseconds since the epoch when the invocation began. */
  readonly at: number;
  readonly durationMs: number;
  /** A tool call, one access to a resource, or a revocation recorded in the token store (its request says what, its subject who). */
  readonly kind: "tool" | "resource" | "revocation";
  /** The tool's name for tool events; for resource events, the tool on whose behalf it ran, if known. */
  readonly tool: string | null;
  /** Tool events of a tool loaded from a tool module: how its code runs. Absent for tools the application defines in-process. */
  readonly toolCode?: ToolCode;
  /** The canonical request that was decided. */
  readonly request: Request;
  readonly decision: Decision;
  readonly outcome: AuditOutcome;
  readonly subject: AuditSubject;
}

/**
 * Where audit events go. `write` must not return before the event is durable
 * (or must reject): a sink that throws or rejects fails the invocation closed.
 */
export interface AuditSink {
  write(event: AuditEvent): void | Promise<void>;
}

/** The subject part of an audit event for a capability. */
export function auditSubject(cap: Capability): AuditSubject {
  const lineage = cap.lineage;
  const labels = labelsOf(cap);
  return {
    capabilityId: cap.id,
    capabilityHash: cap.hash,
    lineage,
    mint: cap.mint,
    sessionId: Object.hasOwn(labels, "session") ? (labels.session ?? null) : null,
    taskId: Object.hasOwn(labels, "task") ? (labels.task ?? null) : null,
  };
}

/** The outcome of an invocation that threw `error`: its stable code (ERR_FOREIGN_FAILURE for anything not agentcap's) and message, never a stack. */
export function failureOutcome(error: unknown): AuditOutcome {
  const known = ForeignFailure.of(error);
  return { ok: false, errorCode: known.code, message: known.message };
}
