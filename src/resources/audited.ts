import {
  AuditFailure,
  auditSubject,
  BudgetExhausted,
  CapabilityDenied,
  clockTime,
  denialError,
  Expired,
  InvalidInput,
  isCapability,
  Revoked,
  type AuditCompletion,
  type AuditEvent,
  type AuditIntent,
  type AuditOutcome,
  type AuditSink,
  type AuditSubject,
  type Capability,
  type Decision,
  type Denied,
  type Request,
  type RowChanges,
} from "../kernel/index.js";
import { failureOutcome, heldIntentPending, heldIntents, isAuditSink, labelsOf, liveDenial, startAccessSpan, timeOrderedId, type TraceSpan } from "../kernel/internal.js";

/*
 * The one place where a resource access is timed, decided, recorded and
 * acted on. Every resource wraps each of its methods in `audited`, and tells
 * the Access it is given which canonical request it is about, what the
 * kernel decided, and when it is about to act: `proceed` records the intent
 * (durable in the sink's configured mode) and only then lets the resource
 * act, so no effect happens that the log does not hold. If the intent
 * cannot be recorded, or the event cannot be encoded, the access fails with
 * AuditFailure before anything happened. The outcome completes the intent
 * afterwards. An access that never reaches `proceed` (a denial, input
 * refused after the decision) acted on nothing and is written as one event.
 */

/** What a resource tells the audit about one access while it runs. */
export interface Access {
  /** Names the canonical request of this access as soon as it is known; the first one named is the event's request unless a denial is recorded. */
  about(request: Request): void;
  /**
   * Records the kernel's decision on `request` (the access's own, or one it
   * needed on the way: a parent directory, the real path that was opened)
   * and returns `decision`. The first denial recorded becomes the event's
   * request and decision.
   */
  decided(request: Request, decision: Decision): Decision;
  /**
   * Called once, after the access was allowed and right before its first
   * effect: resolves once the intent is recorded and the capability is still
   * live (not revoked or expired while the log was written). Rejects with
   * AuditFailure when the intent cannot be recorded, or with the denial when
   * the capability died meanwhile; then the resource must not act.
   */
  proceed(): Promise<void>;
  /**
   * `proceed` for an access that runs synchronously (see `auditedSync`):
   * returns once the intent is recorded by the synchronous sink and the
   * capability is still live, and throws as `proceed` rejects. Without a
   * sink nothing happens between the decision and this call, which are one
   * synchronous step, so the decision stands for the capability's life.
   */
  proceedSync(): void;
  /** The caller's reason for this access (a database write's), recorded in its intent or event; said before `proceed`. */
  explain(reason: string): void;
  /** The rows the access changed, recorded with its outcome once it succeeds. */
  changed(changes: RowChanges): void;
}

/** Waits for the intents held up the chain of the call `cap` acts under (see holdIntent); AuditFailure when one could not be recorded. */
async function callRecorded(held: Promise<void>, request: Request | null): Promise<void> {
  try {
    await held;
  } catch (e) {
    throw new AuditFailure(`the intent of the tool call the ${request === null ? "access" : describe(request)} runs under could not be recorded, so it was not done: ${message(e)}`, { cause: e });
  }
}

/** A synchronous access cannot wait for the intent of the tool call it runs under: while that is not durable, it fails closed. */
function refuseWhileHeld(cap: Capability, request: Request | null): void {
  if (!heldIntentPending(cap)) return;
  // Started all the same, so the store has it; its failure is handled where it is awaited.
  void heldIntents(cap);
  throw new AuditFailure(`the ${request === null ? "access" : describe(request)} runs under a tool call whose intent is not recorded yet, and a synchronous access cannot wait for it; use the asynchronous method`);
}

/** Throws the denial if `cap` was revoked or expired; reported to `access`. */
function stillLive(access: Access, cap: Capability, request: Request | null): void {
  const dead = liveDenial(cap);
  if (dead === null) return;
  if (request !== null) access.decided(request, dead);
  throw denialError(dead);
}

const RESOLVED: Promise<void> = Promise.resolve();

/** The Access of an unaudited resource: it records nothing, but still refuses to act for a capability that died. */
class Unaudited implements Access {
  #request: Request | null = null;
  readonly #cap: Capability;

  constructor(cap: Capability) {
    this.#cap = cap;
  }

  about(request: Request): void {
    this.#request ??= request;
  }

  decided(request: Request, decision: Decision): Decision {
    this.#request ??= request;
    return decision;
  }

  proceed(): Promise<void> {
    // Nothing records this access, but the tool call it runs under is recorded before it acts.
    const held = isCapability(this.#cap) ? heldIntents(this.#cap) : null;
    if (held === null) {
      try {
        stillLive(this, this.#cap, this.#request);
        return RESOLVED;
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return callRecorded(held, this.#request).then(() => {
      stillLive(this, this.#cap, this.#request);
    });
  }

  proceedSync(): void {
    // No liveness check again: nothing is written and nothing waited for, so the kernel's decision, made in this same synchronous step, is the latest word.
    if (isCapability(this.#cap)) refuseWhileHeld(this.#cap, this.#request);
  }

  explain(): void {
    // Nothing records it.
  }

  changed(): void {
    // Nothing records them.
  }
}

/** An Access that also tells the access's span what it is about and what was decided. */
class TracedAccess implements Access {
  readonly #inner: Access;
  readonly #span: TraceSpan;

  constructor(inner: Access, span: TraceSpan) {
    this.#inner = inner;
    this.#span = span;
  }

  about(request: Request): void {
    this.#span.about(request);
    this.#inner.about(request);
  }

  decided(request: Request, decision: Decision): Decision {
    this.#span.decided(request, decision);
    return this.#inner.decided(request, decision);
  }

  proceed(): Promise<void> {
    return this.#inner.proceed();
  }

  proceedSync(): void {
    this.#inner.proceedSync();
  }

  explain(reason: string): void {
    this.#inner.explain(reason);
  }

  changed(changes: RowChanges): void {
    this.#inner.changed(changes);
  }
}

/** `act`, run as a child of `span` and telling it what it decides. */
function tracedAct<T>(span: TraceSpan, act: (access: Access) => T): (access: Access) => T {
  return (access) => span.run(() => act(new TracedAccess(access, span)));
}

/** Collects what one access told its Access, records its intent when it proceeds, and works out the request and decision of its event. */
class Recorder implements Access {
  private subject: Request | null = null;
  private allowed: Decision | null = null;
  private denial: { readonly request: Request; readonly decision: Denied } | null = null;
  /** The intent recorded by `proceed`, once it is. */
  intent: AuditIntent | null = null;
  /** The caller's reason, if it gave one. */
  reason: string | null = null;
  /** The rows the access changed, once it did. */
  changes: RowChanges | null = null;
  readonly #sink: AuditSink;
  readonly #cap: Capability;
  readonly #at: number;
  readonly #subject: () => AuditSubject;

  constructor(sink: AuditSink, cap: Capability, at: number, subject: () => AuditSubject) {
    this.#sink = sink;
    this.#cap = cap;
    this.#at = at;
    this.#subject = subject;
  }

  about(request: Request): void {
    this.subject ??= request;
  }

  explain(reason: string): void {
    this.reason = reason;
  }

  changed(changes: RowChanges): void {
    this.changes = changes;
  }

  decided(request: Request, decision: Decision): Decision {
    this.subject ??= request;
    if (decision.allowed) this.allowed ??= decision;
    else this.denial ??= { request, decision };
    return decision;
  }

  async proceed(): Promise<void> {
    const intent = this.intentToRecord();
    // The intent of the tool call this access runs under, if still held, goes first: the store writes both in one transaction.
    const held = heldIntents(this.#cap);
    try {
      await this.#sink.intend(intent);
    } catch (e) {
      throw intentFailure(intent, e);
    }
    if (held !== null) {
      // Recorded, so completed with the failure below if the call's own intent was not.
      this.intent = intent;
      await callRecorded(held, intent.request);
    }
    this.recorded(intent);
  }

  proceedSync(): void {
    refuseWhileHeld(this.#cap, this.subject);
    const intent = this.intentToRecord();
    try {
      synchronously(this.#sink.intend(intent));
    } catch (e) {
      throw intentFailure(intent, e);
    }
    this.recorded(intent);
  }

  /** The intent of the one allowed decision; refuses to act on anything else. */
  private intentToRecord(): AuditIntent {
    const [request, decision] = [this.subject, this.allowed];
    if (this.intent !== null || request === null || decision === null || this.denial !== null) {
      throw new AuditFailure("a resource asked to act without one allowed decision to record; it was refused");
    }
    return Object.freeze({
      id: timeOrderedId(),
      at: this.#at,
      kind: "resource",
      tool: toolOf(this.#cap),
      request,
      decision,
      subject: this.#subject(),
      ...(this.reason === null ? {} : { reason: this.reason }),
    });
  }

  /** Once the intent is recorded: the resource may act, unless the capability died while it was written. */
  private recorded(intent: AuditIntent): void {
    this.intent = intent;
    stillLive(this, this.#cap, intent.request);
  }

  /** The denial recorded after the intent, if any: it completes the intent. */
  laterDenial(): { readonly request: Request; readonly decision: Denied } | null {
    return this.intent === null ? null : this.denial;
  }

  /**
   * The request and decision of an event that never acted, or null when the
   * kernel decided nothing: then there is no invocation to record (see
   * `audited`). A denial thrown as an error before any decision was recorded
   * (a row scope the schema cannot enforce, for one) is the decision.
   */
  outcomeOf(error: unknown): { readonly request: Request; readonly decision: Decision } | null {
    if (this.denial !== null) return this.denial;
    if (this.subject === null) return null;
    if (this.allowed !== null) return { request: this.subject, decision: this.allowed };
    const denied = deniedBy(error);
    return denied === null ? null : { request: this.subject, decision: denied };
  }
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

function intentFailure(intent: AuditIntent, e: unknown): AuditFailure {
  return new AuditFailure(`the audit sink could not record the intent of the ${describe(intent.request)}, so it was not done: ${message(e)}`, { cause: e });
}

/**
 * Checks that a synchronous sink's call finished its work: one that returns
 * a promise after all may not have recorded anything yet, so the access
 * fails closed (the promise's own outcome is let go, never left unhandled).
 */
function synchronously(returned: void | Promise<void>): void {
  if (returned === undefined) return;
  Promise.resolve(returned).catch(() => undefined);
  throw new AuditFailure("the audit sink says it is synchronous but returned a promise, so nothing is known to be recorded");
}

/** The tool whose call a capability was made for, from its caretaker's label. */
function toolOf(cap: Capability): string | null {
  const labels = labelsOf(cap);
  return Object.hasOwn(labels, "tool") ? (labels.tool ?? null) : null;
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
    case "audit.read":
      return "read of the audit log";
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
  if (!isAuditSink(sink)) throw new InvalidInput(`${factory}: audit must be an AuditSink, an object with intend, complete and write methods`);
  return sink;
}

/** The options every resource factory reads itself, before its own settings: where it records, and whose roots it accepts. */
const SHARED_OPTIONS = ["audit", "mints"];

/** `options` without the shared options (`audit`, `mints`), for a factory's own settings schema; `options` itself when it has none. */
export function ownSettings<T>(options: T): T {
  if (typeof options !== "object" || options === null || !SHARED_OPTIONS.some((k) => Object.hasOwn(options, k))) return options;
  return Object.fromEntries(Object.entries(options).filter(([k]) => !SHARED_OPTIONS.includes(k))) as T;
}

/**
 * Runs one resource access. Without a sink it only runs `act`, turning a
 * throw into a rejection. With one, it times the access and records it:
 * when `act` proceeds, an intent before the effect and its completion
 * (`size(result)` bytes, or the error's code and message; a denial met after
 * the intent) before the returned promise settles; when it never proceeds,
 * one whole event, allowed or denied. Each names the request and decision
 * `act` reported through its Access, the capability's subject, and the tool
 * whose call the capability was made for, if any.
 *
 * Nothing is written when the kernel decided nothing: for something that is
 * not a capability, or input that failed validation or canonicalization
 * before a request could be decided (the caller gets InvalidInput). There is
 * no invocation of authority to record in that case.
 *
 * If the sink cannot record the intent, nothing is done and the promise
 * rejects with AuditFailure. If it cannot record the completion or the whole
 * event, the promise rejects with AuditFailure (the sink's error as its
 * cause) and the result, or the access's own error, is withheld.
 *
 * With `policyHash`, every event's subject carries the hash it gives for
 * the capability (the policy that decided).
 */
export function audited<T>(
  sink: AuditSink | undefined,
  cap: Capability,
  act: (access: Access) => T | Promise<T>,
  size: (result: T) => number | null,
  policyHash?: (cap: Capability) => string,
): Promise<T> {
  // A span when the application records them (see kernel/tracing.ts), a child of the tool call the access runs under.
  const span = startAccessSpan(cap);
  if (span === null) return auditedAccess(sink, cap, act, size, policyHash, null);
  return span.follow(auditedAccess(sink, cap, tracedAct(span, act), size, policyHash, span));
}

function auditedAccess<T>(
  sink: AuditSink | undefined,
  cap: Capability,
  act: (access: Access) => T | Promise<T>,
  size: (result: T) => number | null,
  policyHash: ((cap: Capability) => string) | undefined,
  span: TraceSpan | null,
): Promise<T> {
  if (sink === undefined || !isCapability(cap)) {
    // The act's own promise is returned as it is: resolving another promise with it would cost two more turns of the microtask queue.
    try {
      const result = act(new Unaudited(cap));
      return result instanceof Promise ? result : Promise.resolve(result);
    } catch (e) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rejected with exactly what the act threw, as an async act's promise would be
      return Promise.reject(e);
    }
  }
  return record(sink, cap, act, size, policyHash, span);
}

/** The subject of `cap`'s events, with the policy's hash when the resource reports one. */
function subjectOf(cap: Capability, policyHash: ((cap: Capability) => string) | undefined): () => AuditSubject {
  return () => (policyHash === undefined ? auditSubject(cap) : { ...auditSubject(cap), policyHash: policyHash(cap) });
}

/**
 * One audited access from start to end: what `act` returned or threw, and
 * writing what is left once it ended (the completion of its intent, or one
 * whole event; nothing when the kernel decided nothing).
 */
class Run<T> {
  readonly at: number;
  readonly started = performance.now();
  readonly recorder: Recorder;
  #result: { readonly value: T } | null = null;
  #thrown: unknown;
  #outcome: AuditOutcome | null = null;
  /** The id of the event (or intent) that records the access, once it is written. */
  eventId: string | null = null;

  constructor(
    private readonly sink: AuditSink,
    private readonly cap: Capability,
    private readonly size: (result: T) => number | null,
    private readonly subject: () => AuditSubject,
  ) {
    this.at = clockTime(cap);
    this.recorder = new Recorder(sink, cap, this.at, subject);
  }

  ended(value: T): void {
    this.#result = { value };
    const changes = this.recorder.changes;
    this.#outcome = changes === null ? { ok: true, resultBytes: this.size(value) } : { ok: true, resultBytes: this.size(value), changes };
  }

  failed(e: unknown): void {
    this.#thrown = e;
    this.#outcome = failureOutcome(e);
  }

  /** Writes what is left; a sink's failure to is AuditFailure. `sync`: the sink's call must have finished its work on return. */
  close(sync: boolean): void | Promise<void> {
    const thrown = this.#thrown;
    // The intent's own failure to be recorded is the error; there is nothing more to write.
    if (thrown instanceof AuditFailure && this.recorder.intent === null) throw thrown;
    const closing = this.closing(this.#outcome as AuditOutcome, thrown);
    if (closing === null) return;
    try {
      const pending = closing.write();
      if (sync) {
        synchronously(pending);
        return;
      }
      return pending === undefined ? undefined : Promise.resolve(pending).catch((e: unknown) => Promise.reject(closing.failure(e)));
    } catch (e) {
      throw closing.failure(e);
    }
  }

  /** The result, or what `act` threw. */
  result(): T {
    if (this.#result === null) throw this.#thrown;
    return this.#result.value;
  }

  private closing(outcome: AuditOutcome, thrown: unknown): { write(): void | Promise<void>; failure(e: unknown): AuditFailure } | null {
    const intent = this.recorder.intent;
    if (intent !== null) {
      const denial = this.recorder.laterDenial();
      const completion: AuditCompletion = Object.freeze({ id: intent.id, durationMs: performance.now() - this.started, outcome, ...(denial === null ? {} : { denial }) });
      this.eventId = intent.id;
      return {
        write: () => this.sink.complete(completion),
        failure: (e) =>
          new AuditFailure(`the ${describe(intent.request)} was done and its intent recorded (event ${intent.id}), but its outcome could not be recorded, so ${withheld(outcome)}: ${message(e)}`, { cause: e }),
      };
    }
    const decided = this.recorder.outcomeOf(thrown);
    if (decided === null) return null;
    const event: AuditEvent = Object.freeze({
      id: timeOrderedId(),
      at: this.at,
      durationMs: performance.now() - this.started,
      kind: "resource",
      tool: toolOf(this.cap),
      request: decided.request,
      decision: decided.decision,
      outcome,
      subject: this.subject(),
      ...(this.recorder.reason === null ? {} : { reason: this.recorder.reason }),
    });
    return {
      write: () => {
        // Filed after the intent of the tool call it ran under, if that is still held (the dispatcher awaits that one): one transaction.
        void heldIntents(this.cap);
        const written = this.sink.write(event);
        this.eventId = event.id;
        return written;
      },
      failure: (e) => new AuditFailure(`the audit sink could not record the ${describe(decided.request)}, so ${withheld(outcome)}: ${message(e)}`, { cause: e }),
    };
  }
}

async function record<T>(
  sink: AuditSink,
  cap: Capability,
  act: (access: Access) => T | Promise<T>,
  size: (result: T) => number | null,
  policyHash: ((cap: Capability) => string) | undefined,
  span: TraceSpan | null,
): Promise<T> {
  const run = new Run(sink, cap, size, subjectOf(cap, policyHash));
  try {
    run.ended(await act(run.recorder));
  } catch (e) {
    run.failed(e);
  }
  await run.close(false);
  if (span !== null && run.eventId !== null) span.recorded(run.eventId);
  return run.result();
}

/**
 * `audited` for an access that runs synchronously start to end (a SQLite
 * read): `act` calls `proceedSync`, and the result or error is returned or
 * thrown, with no promise made. With a sink, the sink must declare itself
 * `synchronous` (InvalidInput otherwise, before anything is decided); it is
 * used exactly as `audited` uses a sink (`policyHash` too), and a call of it
 * that returns a promise anyway fails the access closed with AuditFailure.
 */
export function auditedSync<T>(
  sink: AuditSink | undefined,
  cap: Capability,
  act: (access: Access) => T,
  size: (result: T) => number | null,
  policyHash?: (cap: Capability) => string,
): T {
  const span = startAccessSpan(cap);
  if (span === null) return auditedSyncAccess(sink, cap, act, size, policyHash, null);
  let result: T;
  try {
    result = auditedSyncAccess(sink, cap, tracedAct(span, act), size, policyHash, span);
  } catch (e) {
    span.end(e, true);
    throw e;
  }
  span.end(undefined, false);
  return result;
}

function auditedSyncAccess<T>(
  sink: AuditSink | undefined,
  cap: Capability,
  act: (access: Access) => T,
  size: (result: T) => number | null,
  policyHash: ((cap: Capability) => string) | undefined,
  span: TraceSpan | null,
): T {
  if (sink === undefined || !isCapability(cap)) return act(new Unaudited(cap));
  if (sink.synchronous !== true) {
    throw new InvalidInput("this resource's audit sink is asynchronous, so it cannot record a synchronous call; use the asynchronous method, or a sink that declares synchronous: true");
  }
  const run = new Run(sink, cap, size, subjectOf(cap, policyHash));
  try {
    run.ended(act(run.recorder));
  } catch (e) {
    run.failed(e);
  }
  void run.close(true);
  if (span !== null && run.eventId !== null) span.recorded(run.eventId);
  return run.result();
}

function withheld(outcome: AuditOutcome): string {
  return outcome.ok ? "its result is withheld" : `its error (${outcome.errorCode}) is withheld`;
}
