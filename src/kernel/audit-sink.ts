import { labelsOf, nodeOf, type Capability } from "./capability.js";
import type { LinkSummary, MintRecord } from "./node.js";
import type { Scalar } from "./grant.js";
import type { Decision, Denied } from "./decision.js";
import { ForeignFailure, InvalidInput } from "./errors.js";
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
  /**
   * On events of resources that report one (the database): SHA-256 of the
   * policy that decided, the chain's grants and conditions and the
   * resource's own configuration, without ids or times of issue, so events
   * decided under the same policy share it and a changed policy shows.
   */
  readonly policyHash?: string;
}

/**
 * The rows a database write changed, as the capability that wrote them may
 * see them: only the fields its grant for that write reaches, each in the
 * form it is shown (masked, hashed, redacted), a denied field never.
 */
export interface RowChanges {
  /** The rows an update or delete matched, before it ran (empty for a create). */
  readonly before: readonly Readonly<Record<string, Scalar>>[];
  /** The rows a create or update left (empty for a delete). */
  readonly after: readonly Readonly<Record<string, Scalar>>[];
}

/** How an invocation ended. `resultBytes` is the size of what was returned, never its content. */
export type AuditOutcome =
  | {
      readonly ok: true;
      readonly resultBytes: number | null;
      /** For a database write: the rows it changed, before and after, limited by the grant (see RowChanges). */
      readonly changes?: RowChanges;
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

/** The steps of an approval (see `createApprovals`), each recorded as an event of kind "approval". */
export type ApprovalStage = "proposed" | "approved" | "denied" | "expired" | "cancelled" | "executed";

/** What the event of one approval step adds to an ordinary event. */
export interface ApprovalRecord {
  readonly id: string;
  readonly stage: ApprovalStage;
  /** The approver, for "approved" and "denied". */
  readonly by?: string;
  /** The approver's reason for a denial, or what cancelled the request. */
  readonly reason?: string;
  /** SHA-256 of the call's arguments in canonical JSON, or null when approval was asked without them. */
  readonly argsHash: string | null;
}

/**
 * What is known of an invocation before it acts: a tool call, or one access
 * to a resource, and the kernel's decision that allowed it.
 */
export interface AuditIntent {
  readonly id: string;
  /** Milliseconds since the epoch when the invocation began. */
  readonly at: number;
  /**
   * A tool call, one access to a resource, a revocation recorded in the token
   * store (its request says what, its subject who), or one step of an
   * approval (its subject the caller, or for "executed" the approved capability).
   */
  readonly kind: "tool" | "resource" | "revocation" | "approval";
  /** The tool's name for tool events; for resource events, the tool on whose behalf it ran, if known. */
  readonly tool: string | null;
  /** Tool events of a tool loaded from a tool module: how its code runs. Absent for tools the application defines in-process. */
  readonly toolCode?: ToolCode;
  /** The canonical request that was decided. */
  readonly request: Request;
  readonly decision: Decision;
  readonly subject: AuditSubject;
  /** Only on events of kind "approval". */
  readonly approval?: ApprovalRecord;
  /** Why the caller says it acts, as it gave it: a database write's `reason`. */
  readonly reason?: string;
}

/** One whole invocation, allowed or denied: its intent and how it ended. */
export interface AuditEvent extends AuditIntent {
  readonly durationMs: number;
  readonly outcome: AuditOutcome;
}

/** How an invocation recorded by `AuditSink.intend` ended. */
export interface AuditCompletion {
  /** The intent's id. */
  readonly id: string;
  readonly durationMs: number;
  readonly outcome: AuditOutcome;
  /**
   * A denial met after the intent was recorded, while acting: the real path
   * a file turned out to have when opened, an address a host name resolved
   * to. The invocation's request and decision are then this one's.
   */
  readonly denial?: { readonly request: Request; readonly decision: Denied };
}

/**
 * Where audit events go. Record, then act: resources and the dispatcher call
 * `intend` before an allowed invocation does anything and act only once it
 * has resolved, then `complete` it; an invocation that never acts (a denial,
 * input refused after the decision, a failure before the first effect) is
 * one `write`. A sink that throws or rejects fails the invocation closed:
 * from `intend`, nothing happens; from `complete` or `write`, the caller gets
 * AuditFailure instead of the result.
 */
export interface AuditSink {
  /** Must not resolve before the intent is durable (in the sink's configured mode), and must reject when it cannot record it. */
  intend(intent: AuditIntent): void | Promise<void>;
  /** Completes an intent; may resolve before the completion is durable (a crash in between leaves an intent without an outcome, which the log shows). */
  complete(completion: AuditCompletion): void | Promise<void>;
  /** Records an invocation that did not act, whole; must not resolve before it is durable. */
  write(event: AuditEvent): void | Promise<void>;
  /**
   * True for a sink whose three methods finish their work (durable as
   * above) before they return, and return nothing: resources then offer
   * their synchronous methods (a SQLite `readSync`) audited by it, with no
   * promise per call. A method of such a sink that returns a promise anyway
   * fails its access closed.
   */
  readonly synchronous?: boolean;
}

/** Whether `value` has the three methods of an AuditSink. */
export function isAuditSink(value: unknown): value is AuditSink {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.intend === "function" && typeof v.complete === "function" && typeof v.write === "function";
}

/**
 * An in-memory AuditSink that hands `onEvent` each invocation whole, once it
 * has ended: intents are held until completed (a completion's denial
 * becoming the event's request and decision). For demonstrations and tests:
 * it keeps nothing durable, so it is no audit log (see `agentcap/audit`).
 */
export function eventSink(onEvent: (event: AuditEvent) => void | Promise<void>): AuditSink {
  const open = new Map<string, AuditIntent>();
  return Object.freeze({
    intend: (intent: AuditIntent) => {
      open.set(intent.id, intent);
    },
    complete: (c: AuditCompletion) => {
      const intent = open.get(c.id);
      if (intent === undefined) throw new InvalidInput(`no intent ${c.id} is waiting for its outcome`);
      open.delete(c.id);
      return onEvent(Object.freeze({ ...intent, ...(c.denial ?? {}), durationMs: c.durationMs, outcome: c.outcome }));
    },
    write: (event: AuditEvent) => onEvent(event),
  });
}

/**
 * The subject part of an audit event for a capability. Made once per link and
 * frozen (everything in it is fixed when the link is made), so the events of a
 * capability used over and over share one subject.
 */
export function auditSubject(cap: Capability): AuditSubject {
  const node = nodeOf(cap);
  if (node.subject === null) {
    const lineage = cap.lineage;
    const labels = labelsOf(cap);
    node.subject = Object.freeze({
      capabilityId: cap.id,
      capabilityHash: cap.hash,
      lineage,
      mint: cap.mint,
      sessionId: Object.hasOwn(labels, "session") ? (labels.session ?? null) : null,
      taskId: Object.hasOwn(labels, "task") ? (labels.task ?? null) : null,
    });
  }
  return node.subject;
}

/** The outcome of an invocation that threw `error`: its stable code (ERR_FOREIGN_FAILURE for anything not agentcap's) and message, never a stack. */
export function failureOutcome(error: unknown): AuditOutcome {
  const known = ForeignFailure.of(error);
  return { ok: false, errorCode: known.code, message: known.message };
}
