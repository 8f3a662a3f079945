/**
 * OpenTelemetry spans for tool calls and resource accesses: the one module
 * that uses `@opentelemetry/api`. That package is an optional peer
 * dependency, the library side of OpenTelemetry: the application that wants
 * spans installs it with an SDK and registers a tracer provider, and
 * agentcap's spans go wherever the application's go. Without the package, or
 * with no provider registered, or when the sampler drops the span, starting
 * a span returns null after a lookup and nothing else is done.
 *
 * What a span carries is decided here and nowhere else: identifiers, names,
 * depths and codes. Never a request's path, URL, query, values or argv, a
 * call's arguments or result, a denial's reason (it quotes the request), an
 * error's message, or anything from a token or a credential.
 */
import { createRequire } from "node:module";
import type * as Otel from "@opentelemetry/api";
import { isCapability, nodeOf, type Capability } from "./capability.js";
import type { Decision } from "./decision.js";
import { AgentcapError, DenialError, MissingDependency } from "./errors.js";
import type { Node } from "./node.js";
import { requireOptional } from "./optional.js";
import type { Request } from "./request.js";

/** The attribute names agentcap's spans use; the README's tracing section says what each holds. */
export const SPAN_ATTRIBUTES = Object.freeze({
  capabilityId: "agentcap.capability.id",
  lineageDepth: "agentcap.capability.lineage_depth",
  principal: "agentcap.principal.id",
  tenant: "agentcap.tenant.id",
  session: "agentcap.session.id",
  task: "agentcap.task.id",
  tool: "agentcap.tool.name",
  decision: "agentcap.decision",
  decisionCode: "agentcap.decision.code",
  decisionRule: "agentcap.decision.rule",
  decisionAction: "agentcap.decision.action",
  denyingLinkId: "agentcap.denying_link.id",
  denyingLinkIndex: "agentcap.denying_link.index",
  resourceKind: "agentcap.resource.kind",
  resourceOperation: "agentcap.resource.operation",
  auditEventId: "agentcap.audit.event_id",
  errorType: "error.type",
  genAiOperation: "gen_ai.operation.name",
  genAiTool: "gen_ai.tool.name",
});

type Api = typeof Otel;

/** The API once looked for: null when the package is not installed; undefined before the first look. */
let api: Api | null | undefined;
let provider: unknown = null;
let tracer: Otel.Tracer | null = null;
/** Whether any span has claimed a capability; until one has, there is no chain worth walking for a parent. */
let adopted = false;
/** The span of the call each handler's capability was made for, by its link. */
const owners = new WeakMap<Node, RecordingSpan>();

function loadApi(): Api | null {
  try {
    return requireOptional("@opentelemetry/api", "tracing") as Api;
  } catch (e) {
    if (e instanceof MissingDependency) return null;
    throw e;
  }
}

function versionOf(): string | undefined {
  try {
    return (createRequire(import.meta.url)("../../package.json") as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** What the API's global provider delegates to while no provider is registered (the API's own no-op provider); null when the API has no such proxy. */
let unregistered: Otel.TracerProvider | null | undefined;

/**
 * Whether no tracer provider is registered now, so no span would record:
 * asked of the API's global proxy, whose delegate stays the API's no-op
 * provider until one is registered. Answering this first spares every
 * access the active context's lookup and a no-op span (about 190 ns of a
 * one-row read of 1.5 µs). An API without the proxy class (deprecated in
 * 1.x) is asked nothing here: spans are started and dropped as before.
 */
function noProvider(otel: Api, current: Otel.TracerProvider): boolean {
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- the 1.x API's only public way to tell that no provider is registered; looked for, so its removal costs nothing but this shortcut
  const ProxyProvider = typeof otel.ProxyTracerProvider === "function" ? otel.ProxyTracerProvider : null;
  unregistered ??= ProxyProvider === null ? null : new ProxyProvider().getDelegate();
  if (ProxyProvider === null || unregistered === null) return false;
  return current instanceof ProxyProvider && current.getDelegate() === unregistered;
}

/** The tracer of `current`, the provider registered now: a provider registered (or replaced) after agentcap loaded is picked up at the next span. */
function currentTracer(current: Otel.TracerProvider): Otel.Tracer {
  if (current !== provider || tracer === null) {
    provider = current;
    tracer = current.getTracer("agentcap", versionOf());
  }
  return tracer;
}

/** The span of the tool call `cap` was narrowed for, if any: its own link or the nearest above it. */
function ownerOf(cap: Capability): RecordingSpan | null {
  if (!adopted) return null;
  const chain = nodeOf(cap).chain;
  for (let i = chain.length - 1; i >= 0; i--) {
    const owner = owners.get(chain[i] as Node);
    if (owner !== undefined) return owner;
  }
  return null;
}

/**
 * The parent of a new span: the call `owner` when there is one, unless the
 * active context is already inside that call's trace (a context manager
 * carried it into the handler, perhaps under a span of the application's
 * own), which is then the more precise parent.
 */
function parentContext(otel: Api, owner: RecordingSpan | null): Otel.Context {
  const active = otel.context.active();
  if (owner === null) return active;
  return otel.trace.getSpanContext(active)?.traceId === owner.traceId ? active : owner.context;
}

/**
 * Starts a span for an action under `cap` (anything else is traced without
 * capability attributes), a child of `parent`, of the tool call `cap` was
 * made for, or of the active span. Null when nothing records it. Nothing is
 * built for a span before the tracer says it records: the caller names it
 * and sets its attributes after, so that with no provider a call costs one
 * lookup and a no-op span.
 */
function start(cap: unknown, parent: TraceSpan | null, access: boolean): RecordingSpan | null {
  api ??= loadApi();
  if (api === null) return null;
  const otel = api;
  const current = otel.trace.getTracerProvider();
  if (noProvider(otel, current)) return null;
  const owner = (parent as RecordingSpan | null) ?? (adopted && isCapability(cap) ? ownerOf(cap) : null);
  const context = parentContext(otel, owner);
  const span = currentTracer(current).startSpan("agentcap", undefined, context);
  if (!span.isRecording()) return null;
  if (isCapability(cap)) span.setAttributes(capabilityAttributes(cap, access));
  return new RecordingSpan(otel, span, context, access);
}

/** Who acts under `cap`, and for an access, the tool whose call `cap` was made for. */
function capabilityAttributes(cap: Capability, access: boolean): Otel.Attributes {
  const node = nodeOf(cap);
  const attributes: Otel.Attributes = {
    [SPAN_ATTRIBUTES.capabilityId]: node.id,
    [SPAN_ATTRIBUTES.lineageDepth]: node.index,
    [SPAN_ATTRIBUTES.principal]: node.mint.principal,
  };
  // The reserved labels of the runtime's, the dispatcher's and the gateway's caretakers, which no other code can set (see
  // `revocable`); the innermost wins, as in audit events.
  for (const link of node.chain) {
    const labels = link.labels;
    if (Object.hasOwn(labels, "session")) attributes[SPAN_ATTRIBUTES.session] = labels.session;
    if (Object.hasOwn(labels, "task")) attributes[SPAN_ATTRIBUTES.task] = labels.task;
    if (access && Object.hasOwn(labels, "tool")) attributes[SPAN_ATTRIBUTES.tool] = labels.tool;
  }
  return attributes;
}

/**
 * The span of one tool call: a child of the call that made `cap` (a
 * sub-call), of `parent` (the call an approval resumes), or of the active
 * span. `tool` is the name the caller gave. Null when nothing records it.
 */
export function startToolSpan(tool: string, cap: unknown, parent: TraceSpan | null): TraceSpan | null {
  const span = start(cap, parent, false);
  span?.begin(`execute_tool ${tool}`, { [SPAN_ATTRIBUTES.tool]: tool, [SPAN_ATTRIBUTES.genAiOperation]: "execute_tool", [SPAN_ATTRIBUTES.genAiTool]: tool });
  return span;
}

/** The span of one resource access under `cap`, a child of the tool call it runs under, if any. Null when nothing records it. */
export function startAccessSpan(cap: unknown): TraceSpan | null {
  const span = start(cap, null, true);
  // Named for what it does once that is known: the resource has not canonicalized anything yet.
  span?.begin("agentcap.access", {});
  return span;
}

/** A span being recorded for a tool call or a resource access: what it decided and how it ended become its attributes and status. */
export interface TraceSpan {
  /** Names the request of an access, as soon as it is known. */
  about(request: Request): void;
  /** A decision on `request`; the first denial is the span's, else the first allowed one. */
  decided(request: Request, decision: Decision): void;
  /** The call waits for approvers; the call they approve is a child span with its own decision. */
  suspended(): void;
  /** The id of the audit event (or intent) that records this call or access. */
  recorded(eventId: string): void;
  /** Makes this span the parent of the spans of calls and accesses made under `cap` (a handler's capability) and its descendants. */
  adopt(cap: Capability): void;
  /** Runs `fn` with this span active, so that spans the application makes inside it are its children. */
  run<T>(fn: () => T): T;
  /** Ends the span once `settled` settles, with its outcome; `settled` itself, for the caller. */
  follow<T>(settled: Promise<T>): Promise<T>;
  /** Ends the span: when `failed`, with `error`'s code as its status and `error.type`. Later calls do nothing. */
  end(error: unknown, failed: boolean): void;
}

class RecordingSpan implements TraceSpan {
  readonly context: Otel.Context;
  readonly traceId: string;
  readonly #otel: Api;
  readonly #span: Otel.Span;
  /** A resource access's span rather than a tool call's. */
  readonly #access: boolean;
  #request: Request | null = null;
  #decision: Decision | null = null;
  #suspended = false;
  #eventId: string | null = null;
  #ended = false;

  constructor(otel: Api, span: Otel.Span, parent: Otel.Context, access: boolean) {
    this.#otel = otel;
    this.#span = span;
    this.#access = access;
    this.context = otel.trace.setSpan(parent, span);
    this.traceId = span.spanContext().traceId;
  }

  /** Names the span and sets the attributes known when it starts. */
  begin(name: string, attributes: Otel.Attributes): void {
    this.#span.updateName(name);
    this.#span.setAttributes(attributes);
  }

  about(request: Request): void {
    this.#request ??= request;
  }

  decided(request: Request, decision: Decision): void {
    if (this.#decision !== null && (!this.#decision.allowed || decision.allowed)) return;
    this.#decision = decision;
    // As in the audit event: the request first named, unless a denial names its own.
    if (decision.allowed) this.#request ??= request;
    else this.#request = request;
  }

  suspended(): void {
    this.#suspended = true;
  }

  recorded(eventId: string): void {
    this.#eventId ??= eventId;
  }

  adopt(cap: Capability): void {
    adopted = true;
    owners.set(nodeOf(cap), this);
  }

  run<T>(fn: () => T): T {
    return this.#otel.context.with(this.context, fn);
  }

  follow<T>(settled: Promise<T>): Promise<T> {
    return settled.then(
      (value) => {
        this.end(undefined, false);
        return value;
      },
      (e: unknown) => {
        this.end(e, true);
        throw e;
      },
    );
  }

  end(error: unknown, failed: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#span;
    const request = this.#request;
    if (request !== null) {
      if (this.#access) {
        // Named for what it did once that is known: the span started before the resource had canonicalized anything.
        span.updateName(request.action);
        span.setAttribute(SPAN_ATTRIBUTES.resourceKind, request.action.split(".")[0] ?? request.action);
        span.setAttribute(SPAN_ATTRIBUTES.resourceOperation, request.action);
      }
      if (request.tenant !== undefined) span.setAttribute(SPAN_ATTRIBUTES.tenant, request.tenant);
    }
    // A denial thrown before any decision was reported (a row scope the schema cannot enforce, for one) is the decision.
    const decision = this.#decision ?? (failed && error instanceof DenialError ? { allowed: false as const, reason: "", ...error.details, code: error.code } : null);
    if (this.#suspended) span.setAttribute(SPAN_ATTRIBUTES.decision, "approval_required");
    else if (decision?.allowed === true) span.setAttribute(SPAN_ATTRIBUTES.decision, "allow");
    else if (decision !== null) {
      span.setAttributes({
        [SPAN_ATTRIBUTES.decision]: "deny",
        [SPAN_ATTRIBUTES.decisionCode]: decision.code,
        [SPAN_ATTRIBUTES.decisionRule]: decision.rule,
        [SPAN_ATTRIBUTES.denyingLinkId]: decision.linkId,
        [SPAN_ATTRIBUTES.denyingLinkIndex]: decision.link,
        ...(request === null ? {} : { [SPAN_ATTRIBUTES.decisionAction]: request.action }),
      });
    }
    if (this.#eventId !== null) span.setAttribute(SPAN_ATTRIBUTES.auditEventId, this.#eventId);
    if (failed) {
      const code = error instanceof AgentcapError ? error.code : "ERR_FOREIGN_FAILURE";
      span.setAttribute(SPAN_ATTRIBUTES.errorType, code);
      span.setStatus({ code: this.#otel.SpanStatusCode.ERROR, message: code });
    }
    span.end();
  }
}
