import {
  AuditFailure,
  auditSubject,
  type AuditEvent,
  type AuditIntent,
  type AuditOutcome,
  type AuditSink,
  type Capability,
  type Decision,
  type Request,
  type ToolCode,
} from "../kernel/index.js";
import { defined, heldIntents, timeOrderedId } from "../kernel/internal.js";
import { isPending } from "./pending.js";

/*
 * A tool call's audit record. Record, then act: an allowed call's intent is
 * durable before its handler runs, and its outcome completes it afterwards;
 * a call that never runs its handler (denied, unknown tool, bad input) is one
 * event.
 */

/** What the dispatcher knows about one invocation before its handler runs. */
export interface InvocationStart {
  readonly at: number;
  readonly tool: string;
  /** How the tool's code runs, when it was loaded from a tool module. */
  readonly toolCode: ToolCode | undefined;
  readonly request: Request;
  readonly decision: Decision;
  readonly capability: Capability;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The intent of a call about to run its handler, not recorded yet. */
export function toolIntent(s: InvocationStart): AuditIntent {
  const { at, tool, toolCode, request, decision } = s;
  const subject = auditSubject(s.capability);
  // Two literals rather than a spread of `defined(...)`: the same fields in the same order, without an object made only to be copied.
  return Object.freeze(
    toolCode === undefined
      ? { id: timeOrderedId(), at, kind: "tool" as const, tool, request, decision, subject }
      : { id: timeOrderedId(), at, kind: "tool" as const, tool, toolCode, request, decision, subject },
  );
}

/**
 * Records `intent`, made for a call under `capability`, after the intents
 * still held up its chain (a sub-call of a built-in tool's call): returns
 * once all are durable, or a promise that resolves then when something must
 * be waited for; throws (or rejects with) AuditFailure when the sink cannot
 * take them, and then the call must not act. `held` says the handler may have
 * run already (its intent was held until its first access), and acted on nothing.
 */
export function recordToolIntent(sink: AuditSink, intent: AuditIntent, capability: Capability, held: boolean): Promise<void> | undefined {
  const before = heldIntents(capability);
  let written: unknown;
  try {
    written = sink.intend(intent);
  } catch (e) {
    throw intentFailure(intent, held, e);
  }
  if (before === null && !isPending(written)) return undefined;
  return (async () => {
    try {
      await written;
      if (before !== null) await before;
    } catch (e) {
      throw intentFailure(intent, held, e);
    }
  })();
}

function intentFailure(intent: AuditIntent, held: boolean, e: unknown): AuditFailure {
  const what = held ? "nothing it asked for was done" : "it was not run";
  return new AuditFailure(`the audit sink could not record the intent of the call to tool ${String(intent.tool)}, so ${what}: ${message(e)}`, { cause: e });
}

/**
 * Completes an intent with the call's outcome: returns once it is recorded, or
 * a promise when the sink answers with one; throws (or rejects with)
 * AuditFailure, the result or error withheld, when the sink cannot take it.
 */
export function completeToolCall(sink: AuditSink, intent: AuditIntent, startedMs: number, outcome: AuditOutcome): Promise<void> | undefined {
  let done: unknown;
  try {
    done = sink.complete(Object.freeze({ id: intent.id, durationMs: performance.now() - startedMs, outcome }));
  } catch (e) {
    throw completionFailure(intent, outcome, e);
  }
  if (!isPending(done)) return undefined;
  return (async () => {
    try {
      await done;
    } catch (e) {
      throw completionFailure(intent, outcome, e);
    }
  })();
}

function completionFailure(intent: AuditIntent, outcome: AuditOutcome, e: unknown): AuditFailure {
  return new AuditFailure(
    `the call to tool ${String(intent.tool)} ran and its intent was recorded (event ${intent.id}), but its outcome could not be recorded, so ${withheld(outcome)}: ${message(e)}`,
    { cause: e },
  );
}

/**
 * Records a call that never ran its handler, whole, and returns its event's
 * id: at once when the sink answers synchronously, else a promise of it.
 * Throws (or rejects with) AuditFailure when the sink cannot take it.
 */
export function writeToolEvent(sink: AuditSink, s: InvocationStart, startedMs: number, outcome: AuditOutcome): string | Promise<string> {
  const event: AuditEvent = Object.freeze({
    id: timeOrderedId(),
    at: s.at,
    durationMs: performance.now() - startedMs,
    kind: "tool",
    tool: s.tool,
    ...defined({ toolCode: s.toolCode }),
    request: s.request,
    decision: s.decision,
    outcome,
    subject: auditSubject(s.capability),
  });
  const failure = (e: unknown) => new AuditFailure(`the audit sink could not record the call to tool ${s.tool}, so ${withheld(outcome)}: ${message(e)}`, { cause: e });
  let written: unknown;
  try {
    written = sink.write(event);
  } catch (e) {
    throw failure(e);
  }
  if (!isPending(written)) return event.id;
  return (async () => {
    try {
      await written;
    } catch (e) {
      throw failure(e);
    }
    return event.id;
  })();
}

function withheld(outcome: AuditOutcome): string {
  return outcome.ok ? "its result is withheld" : `its error (${outcome.errorCode}) is withheld`;
}

/** The outcome of a call that returned `result`: its size as JSON, never its content. */
export function succeeded(result: unknown): AuditOutcome {
  return { ok: true, resultBytes: sizeOf(result) };
}

/** The JSON text of results sized by `succeeded`, so that whoever sends a result as JSON next need not serialize it again. */
const texts = new WeakMap<object, string>();

function sizeOf(result: unknown): number | null {
  if (result === undefined) return 0;
  if (result instanceof Uint8Array) return result.byteLength;
  try {
    const json = JSON.stringify(result) as string | undefined;
    if (json === undefined) return null;
    if (typeof result === "object" && result !== null) texts.set(result, json);
    return Buffer.byteLength(json);
  } catch {
    // A result that cannot be sized (cyclic, BigInt, holds a capability) is still audited, without a size.
    return null;
  }
}

/** JSON.stringify(result), taken from when the dispatcher sized it if it did. */
export function resultText(result: unknown): string | undefined {
  return (typeof result === "object" && result !== null ? texts.get(result) : undefined) ?? (JSON.stringify(result));
}
