import { randomUUID } from "node:crypto";
import {
  AuditFailure,
  auditSubject,
  BudgetExhausted,
  CapabilityDenied,
  clockTime,
  Expired,
  InvalidInput,
  isCapability,
  Revoked,
  type AuditEvent,
  type AuditOutcome,
  type AuditSink,
  type Capability,
  type Decision,
  type Denied,
  type Request,
} from "../kernel/index.js";
import { failureOutcome, labelsOf } from "../kernel/internal.js";

/*
 * The one place where a resource access is timed, decided, acted on and
 * recorded. Every resource wraps each of its methods in `audited`, and tells
 * the Access it is given which canonical request it is about and what the
 * kernel decided; `audited` writes the one event of the access and fails the
 * call closed when the sink cannot take it.
 *
 * The outcome of an access (its result size, or its error) is only known
 * after acting, so the event is written afterwards. If the store fails at
 * that point, a side effect (a file written, a request sent, a row changed,
 * a program run) may already have happened: the caller still gets
 * AuditFailure and never the result, so no action is reported as a silent
 * success, but the action itself cannot be undone. Writing a second,
 * "intent" event before acting would double the events per access and
 * invariant 7 asks for exactly one.
 */

/** What a resource tells the audit about one access while it runs. Both methods are cheap and never throw. */
export interface Access {
  /** Names the canonical request of this access as soon as it is known; the first one named is the event's request unless a denial is recorded. */
  about(request: Request): void;
  /**
   * Records the kernel's decision on `request` (the access's own, or one it
   * needed on the way: a redirect hop, a parent directory, the real path that
   * was opened) and returns `decision`. The first denial recorded becomes the
   * event's request and decision.
   */
  decided(request: Request, decision: Decision): Decision;
}

/** The Access of an unaudited resource: it records nothing. */
const UNAUDITED: Access = Object.freeze({
  about: () => undefined,
  decided: (_request: Request, decision: Decision) => decision,
});

/** Collects what one access told its Access, and works out the request and decision of its event. */
class Recorder implements Access {
  private subject: Request | null = null;
  private allowed: Decision | null = null;
  private denial: { readonly request: Request; readonly decision: Denied } | null = null;

  about(request: Request): void {
    this.subject ??= request;
  }

  decided(request: Request, decision: Decision): Decision {
    this.subject ??= request;
    if (decision.allowed) this.allowed ??= decision;
    else this.denial ??= { request, decision };
    return decision;
  }

  /**
   * The request and decision of the event, or null when the kernel decided
   * nothing: then there is no invocation to record (see `audited`). A denial
   * thrown as an error before any decision was recorded (a row scope the
   * schema cannot enforce, for one) is the decision.
   */
  outcomeOf(error: unknown): { readonly request: Request; readonly decision: Decision } | null {
    if (this.denial !== null) return this.denial;
    if (this.subject === null) return null;
    if (this.allowed !== null) return { request: this.subject, decision: this.allowed };
    const denied = deniedBy(error);
    return denied === null ? null : { request: this.subject, decision: denied };
  }
}

/** The Denied decision a denial error stands for, or null for any other error. */
function deniedBy(error: unknown): Denied | null {
  if (!(error instanceof CapabilityDenied || error instanceof Expired || error instanceof Revoked || error instanceof BudgetExhausted)) return null;
  return { allowed: false, code: error.code, reason: error.message, ...error.details };
}

/** The resource a request names, for messages: its path, URL, model or program. */
function describe(request: Request): string {
  switch (request.action) {
    case "http.request":
      return `${request.method} ${request.url}`;
    case "db.read":
    case "db.create":
    case "db.update":
    case "db.delete":
      return `${request.action} on ${request.model}`;
    case "exec":
      return `exec of ${request.argv[0] ?? ""}`;
    case "tool.call":
      return `call to ${request.tool}`;
    case "revoke":
      return `revocation of ${request.target} ${request.id}`;
    default:
      return `${request.action} of ${request.path}`;
  }
}

/** The size of `value` as JSON, in bytes; null when it cannot be sized. Used for results that are not bytes already. */
export function jsonBytes(value: unknown): number | null {
  try {
    const json = JSON.stringify(value) as string | undefined;
    return json === undefined ? 0 : Buffer.byteLength(json);
  } catch {
    return null;
  }
}

/**
 * Reads the `audit` option of a resource factory: undefined when absent,
 * otherwise an AuditSink. Throws InvalidInput, naming `factory`, for anything
 * else. Read as an own property, so a polluted Object.prototype cannot
 * install a sink.
 */
export function auditOption(options: unknown, factory: string): AuditSink | undefined {
  if (typeof options !== "object" || options === null || !Object.hasOwn(options, "audit")) return undefined;
  const sink: unknown = (options as { audit: unknown }).audit;
  if (sink === undefined) return undefined;
  if (typeof sink !== "object" || sink === null || typeof (sink as { write?: unknown }).write !== "function") {
    throw new InvalidInput(`${factory}: audit must be an AuditSink, an object with a write(event) method`);
  }
  return sink as AuditSink;
}

/** `options` without its `audit` member, for validators that accept plain data only; `options` itself when it has none. */
export function withoutAudit<T>(options: T): T {
  if (typeof options !== "object" || options === null || !Object.hasOwn(options, "audit")) return options;
  const rest: Record<string, unknown> = { ...(options as Record<string, unknown>) };
  delete rest.audit;
  return rest as T;
}

/**
 * Runs one resource access. Without a sink it only runs `act`, turning a
 * throw into a rejection. With one, it times the access, runs it, and writes
 * exactly one AuditEvent of kind "resource", allowed or denied, before the
 * returned promise settles: the request and decision `act` reported through
 * its Access, the outcome (`size(result)` bytes, or the error's code and
 * message), the duration, the capability's subject, and the tool whose call
 * the capability was made for, if any.
 *
 * No event is written when the kernel decided nothing: for something that is
 * not a capability, or input that failed validation or canonicalization
 * before a request could be decided (the caller gets InvalidInput). There is
 * no invocation of authority to record in that case.
 *
 * If the sink throws or rejects, the promise rejects with AuditFailure (the
 * sink's error as its cause) and the result, or the access's own error, is
 * withheld. See the note at the top of this file about side effects.
 */
export function audited<T>(sink: AuditSink | undefined, cap: Capability, act: (access: Access) => T | Promise<T>, size: (result: T) => number | null): Promise<T> {
  if (sink === undefined || !isCapability(cap)) {
    return new Promise<T>((resolve) => {
      resolve(act(UNAUDITED));
    });
  }
  return record(sink, cap, act, size);
}

async function record<T>(sink: AuditSink, cap: Capability, act: (access: Access) => T | Promise<T>, size: (result: T) => number | null): Promise<T> {
  const at = clockTime(cap);
  const started = performance.now();
  const recorder = new Recorder();
  let outcome: AuditOutcome;
  let result: { readonly value: T } | null = null;
  let thrown: unknown;
  try {
    const value = await act(recorder);
    result = { value };
    outcome = { ok: true, resultBytes: size(value) };
  } catch (e) {
    thrown = e;
    outcome = failureOutcome(e);
  }
  const decided = recorder.outcomeOf(thrown);
  if (decided !== null) {
    const labels = labelsOf(cap);
    const event: AuditEvent = Object.freeze({
      id: randomUUID(),
      at,
      durationMs: performance.now() - started,
      kind: "resource",
      tool: Object.hasOwn(labels, "tool") ? (labels.tool ?? null) : null,
      request: decided.request,
      decision: decided.decision,
      outcome,
      subject: auditSubject(cap),
    });
    try {
      await sink.write(event);
    } catch (e) {
      const what = outcome.ok ? "its result is withheld" : `it had failed with ${outcome.errorCode}`;
      const effect = decided.decision.allowed ? " (it was allowed, so it may have taken effect)" : "";
      const cause = e instanceof Error ? e.message : String(e);
      throw new AuditFailure(`the audit sink could not record the ${describe(decided.request)}, so ${what}${effect}: ${cause}`, { cause: e });
    }
  }
  if (result === null) throw thrown;
  return result.value;
}
