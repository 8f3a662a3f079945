import { randomUUID } from "node:crypto";
import {
  AuditFailure,
  auditSubject,
  type AuditEvent,
  type AuditOutcome,
  type AuditSink,
  type Capability,
  type Decision,
  type Request,
  type ToolCode,
} from "../kernel/index.js";
import { defined } from "../kernel/internal.js";

/** What the dispatcher knows about one invocation when it ends. */
export interface InvocationRecord {
  readonly at: number;
  readonly startedMs: number;
  readonly tool: string;
  /** How the tool's code runs, when it was loaded from a tool module. */
  readonly toolCode: ToolCode | undefined;
  readonly request: Request;
  readonly decision: Decision;
  readonly outcome: AuditOutcome;
  readonly capability: Capability;
}

/**
 * Writes the one event of an invocation and waits until the sink has it.
 * Throws AuditFailure if the sink throws or rejects, so the caller can fail
 * the call closed.
 */
export async function writeToolEvent(sink: AuditSink, r: InvocationRecord): Promise<void> {
  const event: AuditEvent = Object.freeze({
    id: randomUUID(),
    at: r.at,
    durationMs: performance.now() - r.startedMs,
    kind: "tool",
    tool: r.tool,
    ...defined({ toolCode: r.toolCode }),
    request: r.request,
    decision: r.decision,
    outcome: r.outcome,
    subject: auditSubject(r.capability),
  });
  try {
    await sink.write(event);
  } catch (e) {
    const what = r.outcome.ok ? "its result is withheld" : `it had failed with ${r.outcome.errorCode}`;
    throw new AuditFailure(`the audit sink could not record the call to tool ${r.tool}, so ${what}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

/** The outcome of a call that returned `result`: its size as JSON, never its content. */
export function succeeded(result: unknown): AuditOutcome {
  return { ok: true, resultBytes: sizeOf(result) };
}

function sizeOf(result: unknown): number | null {
  if (result === undefined) return 0;
  if (result instanceof Uint8Array) return result.byteLength;
  try {
    const json = JSON.stringify(result) as string | undefined;
    return json === undefined ? null : Buffer.byteLength(json);
  } catch {
    // A result that cannot be sized (cyclic, BigInt, holds a capability) is still audited, without a size.
    return null;
  }
}
