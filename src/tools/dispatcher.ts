import {
  checkTrusted,
  defined,
  failureOutcome,
  holdIntent,
  isAuditSink,
  liveDenial,
  narrowedCaretaker,
  parseLabels,
  startToolSpan,
  trustedMintsOption,
  untrustedMint,
  type TraceSpan,
} from "../kernel/internal.js";
import {
  authorize,
  check,
  clockTime,
  denialError,
  ForeignFailure,
  InvalidInput,
  isCapability,
  NotACapability,
  revocationSignal,
  type Approvals,
  type AuditOutcome,
  type AuditSink,
  type Capability,
  type Decision,
  type Request,
  type ShadowDenial,
  type ToolRequest,
} from "../kernel/index.js";
import { completeToolCall, recordToolIntent, succeeded, toolIntent, writeToolEvent } from "./audit.js";
import { implementationOf, isTool, type AnyTool, type CallOptions, type JsonSchema, type SubCall, type ToolContext, type ToolImplementation } from "./define.js";
import { isPending } from "./pending.js";
import { needsContext, planCall, tenantFor, type CallPlan } from "./plan.js";

/** A tool as a model may see it: name, description and input schema, nothing else. */
export interface CatalogEntry {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: JsonSchema;
}

/** What a dispatcher is built from: its tools, and the sink every invocation is recorded in. */
export interface DispatcherOptions {
  readonly tools: readonly AnyTool[];
  readonly audit: AuditSink;
  /**
   * The mints whose roots this dispatcher accepts (their `Mint.id`s): a
   * capability another mint issued is denied, and recorded, before its tool's
   * needs are worked out. Without it, any mint's roots are accepted.
   */
  readonly mints?: readonly string[];
  /**
   * The approval flow for calls an approval rule of the caller's chain
   * matches: such a call waits for its approvers and then runs once under a
   * capability bound to exactly its tool, arguments and needs. Without it,
   * such a call is denied (ApprovalRequired) and such tools are not listed.
   */
  readonly approvals?: Approvals;
}

/** Runs tool calls under capabilities. Holds no authority of its own: every call brings its capability. */
export interface Dispatcher {
  /**
   * Calls a registered tool with `capability`: checks `tool.call`, validates
   * the input, narrows the capability to exactly the tool's needs (checking
   * each first), charges the call, records its intent, runs the handler with
   * the narrowed capability, and completes the intent with the outcome; a
   * call refused before its handler runs is recorded as one event. The
   * handler's capability is revoked when the call settles. If the intent
   * cannot be recorded, the handler never runs and the call fails with
   * AuditFailure; if the outcome cannot, the call fails with AuditFailure.
   */
  readonly call: SubCall;
  /** The tools `capability` reaches (checked without charging): others are not listed at all. */
  catalog(capability: Capability, options?: CallOptions): readonly CatalogEntry[];
  /** The registered tool of that name, if any. */
  tool(name: string): AnyTool | undefined;
  /** Works out a call under `capability` (input, needs, the grant for exactly them) without authorizing or charging anything. */
  plan(tool: AnyTool | string, input: unknown, capability: Capability, options?: CallOptions): Promise<CallPlan>;
}

/** Creates a dispatcher over a fixed set of tools; throws InvalidInput for a duplicate name or a non-tool. */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const own = <K extends keyof DispatcherOptions>(k: K): DispatcherOptions[K] | undefined => (Object.hasOwn(options, k) ? options[k] : undefined);
  const [tools, sink, approvals] = [own("tools"), own("audit"), own("approvals")];
  const flow: unknown = approvals;
  if (flow !== undefined && (typeof flow !== "object" || flow === null || typeof (flow as { run?: unknown }).run !== "function")) {
    throw new InvalidInput("createDispatcher: approvals must be an approval flow made by createApprovals");
  }
  /** Whether a decision only waits for an approval that this dispatcher can ask for. */
  const asksApproval = (d: Decision) => !d.allowed && d.code === "ERR_APPROVAL_REQUIRED" && approvals !== undefined;
  const trusted = trustedMintsOption(options, "createDispatcher");
  if (!Array.isArray(tools)) throw new InvalidInput("createDispatcher needs tools: an array of tools made by defineTool");
  if (!isAuditSink(sink)) {
    throw new InvalidInput("createDispatcher needs audit: an AuditSink with intend, complete and write methods; every invocation is recorded there");
  }
  const registry = new Map<string, Registered>();
  for (const [i, tool] of tools.entries()) {
    if (!isTool(tool)) throw new InvalidInput(`tools.${i} is not a tool made by defineTool`);
    if (registry.has(tool.name)) throw new InvalidInput(`tools.${i}: a tool named ${tool.name} is already registered`);
    registry.set(tool.name, register(tool));
  }

  const resolve = (ref: unknown): string => {
    if (typeof ref === "string") return ref;
    if (isTool(ref) && registry.get(ref.name)?.tool === ref) return ref.name;
    throw new InvalidInput("call expects a tool registered with this dispatcher, or its name");
  };

  /**
   * A call, and its span when one is recorded (`parent`: the call an approval resumed). `mayAsk` is false for the call an
   * approval resumes, which must not ask again.
   */
  const traced = (ref: unknown, input: unknown, capability: Capability, callOptions: CallOptions | undefined, mayAsk: boolean, parent: TraceSpan | null) => {
    const span = startToolSpan(typeof ref === "string" ? ref : isTool(ref) ? ref.name : "(not a tool)", capability, parent);
    return span === null ? dispatch(ref, input, capability, callOptions, mayAsk, null) : span.follow(dispatch(ref, input, capability, callOptions, mayAsk, span));
  };

  /**
   * A call. Nothing in it waits unless something it calls (the tool's needs, the audit sink, the handler) answers with a
   * promise.
   */
  const dispatch = async (ref: unknown, input: unknown, capability: Capability, callOptions: CallOptions | undefined, mayAsk: boolean, span: TraceSpan | null): Promise<unknown> => {
    if (!isCapability(capability)) throw new NotACapability("a tool call needs the caller's capability; nothing else carries authority");
    const name = resolve(ref);
    const registered = registry.get(name);
    const toolCode = registered?.impl.code;
    const tenant = tenantFor(capability, callOptions);
    const startedMs = performance.now();
    const at = clockTime(capability);
    const toolRequest: ToolRequest =
      registered !== undefined && tenant === null ? registered.request : { action: "tool.call", tool: name, ...(tenant === null ? {} : { tenant }) };
    // Deciding `tool.call` first means a tool the capability does not reach is denied whatever its input: designation is authorization.
    // Until this decision exists there is no invocation to record: a call that cannot name a tool (or a tenant) is refused without an event.
    let request: Request = toolRequest;
    let decision: Decision = checkTrusted(trusted, capability, toolRequest);
    let plan: CallPlan;
    /** The plan once its needs were asked for: a call that then does not run its handler releases what they started. */
    let worked: CallPlan | undefined;
    let asking = false;
    try {
      // A call waiting only for approval is worked out first: approvers are shown its exact arguments and needs.
      if (!decision.allowed && !asksApproval(decision)) throw denialError(decision);
      if (registered === undefined) throw new InvalidInput(`no tool named ${name} is registered with this dispatcher`);
      const planned = planCall(registered.tool, input, needsContext(capability, tenant));
      plan = planned instanceof Promise ? await planned : planned;
      worked = plan;
      let needShadow: ShadowDenial | undefined;
      let needApproval = false;
      for (const [i, need] of plan.needs.entries()) {
        // A need bound to its arguments is decided with them, as the resource will decide it.
        const bound = plan.needArgs[i];
        const d = check(capability, need, bound === undefined ? undefined : { args: bound });
        // The call an approval resumed asks nothing more for itself: a resource need its approval does not cover is refused before the
        // handler runs, not when it is used. A sub-tool it needs is another call, which asks approvers of its own when it is made.
        if (!d.allowed && (!asksApproval(d) || (!mayAsk && need.action !== "tool.call"))) {
          [request, decision] = [need, d];
          throw denialError(d);
        }
        if (d.allowed) needShadow ??= d.shadow;
        else needApproval = true;
      }
      const args = { args: plan.input };
      // Only a dispatcher with an approval flow asks whether the call itself waits for one.
      if (mayAsk && approvals !== undefined && (asksApproval(check(capability, toolRequest, args)) || needApproval)) {
        asking = true;
      } else {
        decision = authorize(capability, toolRequest, args);
        if (!decision.allowed) throw denialError(decision);
        // A grant attached in shadow is asked about the whole call: the first need it would deny is the call's disagreement.
        if (decision.shadow === undefined && needShadow !== undefined) decision = { ...decision, shadow: needShadow };
      }
    } catch (e) {
      // Refused before the handler ran: nothing acted, so the call is one event.
      if (worked !== undefined) registered?.impl.release?.(worked.input);
      span?.decided(request, decision);
      const written = writeToolEvent(sink, { at, tool: name, toolCode, request, decision, capability }, startedMs, failureOutcome(e));
      const id = typeof written === "string" ? written : await written;
      span?.recorded(id);
      throw ForeignFailure.of(e);
    }
    if (asking && approvals !== undefined) {
      // Suspended, not refused: the approval flow records each step, and the approved call is dispatched like any other.
      const waiting = callOptions?.approval;
      span?.suspended();
      // The approved call works out its needs again when it resumes.
      registered.impl.release?.(plan.input);
      const needArgs = plan.needArgs.some((a) => a !== undefined) ? { needArgs: plan.needArgs } : {};
      return approvals.run(capability, toolRequest, { tool: name, args: plan.input, needs: plan.needs, ...needArgs, ...defined({ onPending: waiting?.onPending, signal: waiting?.signal }) }, (approved) =>
        traced(ref, input, approved, callOptions, false, span),
      );
    }
    // Record, then act: the handler runs only once the intent is durable, and only if the capability is still live. A built-in
    // tool acts only through resources, so its intent is held on the handler's capability and written with the first access's
    // (one transaction, not two in turn); it is durable before the call answers either way.
    const intent = toolIntent({ at, tool: name, toolCode, request, decision, capability });
    span?.decided(request, decision);
    const { impl } = registered;
    let flush: (() => Promise<void>) | null = null;
    if (impl.confined) {
      flush = () => recordToolIntent(sink, intent, capability, true) ?? Promise.resolve();
    } else {
      try {
        const recording = recordToolIntent(sink, intent, capability, false);
        if (recording !== undefined) await recording;
      } catch (e) {
        // Not recorded, so not run: what its needs started is dropped now, not at its time limit.
        impl.release?.(plan.input);
        throw e;
      }
    }
    let outcome: AuditOutcome;
    let result: unknown;
    let failed = false;
    let error: unknown;
    let handed = false;
    try {
      const dead = liveDenial(capability);
      if (dead !== null) throw denialError(dead);
      // The handler's capability: narrowed to exactly the needs, behind a forwarder revoked as soon as the call settles,
      // so a handler that keeps it past the call holds nothing.
      const lease = narrowedCaretaker(capability, plan.grant, registered.labels);
      if (flush !== null) {
        const write = flush;
        flush = holdIntent(lease.capability, write);
      }
      const context = new CallContext(tenant, dispatcher, lease.capability);
      span?.adopt(lease.capability);
      handed = true;
      try {
        result = span === null ? impl.handler(plan.input, lease.capability, context) : span.run(() => impl.handler(plan.input, lease.capability, context));
        if (isPending(result)) result = await result;
      } finally {
        lease.revoke(registered.returned);
        disposeContext(context);
      }
      outcome = succeeded(result);
    } catch (e) {
      if (!handed) impl.release?.(plan.input);
      failed = true;
      error = e;
      outcome = failureOutcome(e);
    }
    if (flush !== null) await flush();
    span?.recorded(intent.id);
    const completing = completeToolCall(sink, intent, startedMs, outcome);
    if (completing !== undefined) await completing;
    // Whatever a handler threw reaches the caller as an AgentcapError (ForeignFailure keeps the original as its cause).
    if (failed) throw ForeignFailure.of(error);
    return result;
  };

  const call = ((ref: unknown, input: unknown, capability: Capability, callOptions?: CallOptions) => traced(ref, input, capability, callOptions, true, null)) as SubCall;

  const dispatcher: Dispatcher = Object.freeze({
    call,
    catalog: (capability: Capability, callOptions?: CallOptions): readonly CatalogEntry[] => {
      const tenant = tenantFor(capability, callOptions);
      const reached = [...registry.values()].map((r) => r.tool).filter((t) => {
        const d = checkTrusted(trusted, capability, { action: "tool.call", tool: t.name, ...(tenant === null ? {} : { tenant }) });
        return d.allowed || asksApproval(d);
      });
      return Object.freeze(reached.map((t) => Object.freeze({ name: t.name, description: t.description, inputSchema: t.inputSchema })));
    },
    tool: (name: string) => registry.get(name)?.tool,
    plan: async (ref: AnyTool | string, input: unknown, capability: Capability, callOptions?: CallOptions) => {
      if (!isCapability(capability)) throw new NotACapability("planning a call needs the capability it would run under");
      // Working out needs looks at resources: a root from an untrusted mint gets no further than its denial.
      const untrusted = untrustedMint(capability, trusted);
      if (untrusted !== null) throw denialError(untrusted);
      const name = resolve(ref);
      const registered = registry.get(name);
      if (registered === undefined) throw new InvalidInput(`no tool named ${name} is registered with this dispatcher`);
      const plan = await planCall(registered.tool, input, needsContext(capability, tenantFor(capability, callOptions)));
      // Only planned: whatever working out the needs started is not run.
      registered.impl.release?.(plan.input);
      return plan;
    },
  });
  return dispatcher;
}

/** What a dispatcher works out once per tool, when it is registered, instead of on every call. */
interface Registered {
  readonly tool: AnyTool;
  readonly impl: ToolImplementation;
  /** The `tool.call` request of a call acting for no tenant. */
  readonly request: ToolRequest;
  /** The labels of the forwarder each call's handler gets. */
  readonly labels: Readonly<Record<string, string>>;
  /** Why that forwarder is revoked. */
  readonly returned: string;
}

function register(tool: AnyTool): Registered {
  return Object.freeze({
    tool,
    impl: implementationOf(tool),
    request: Object.freeze({ action: "tool.call", tool: tool.name }),
    labels: parseLabels({ tool: tool.name }),
    returned: `the call to tool ${tool.name} has returned`,
  });
}

let disposeContext: (context: CallContext) => void;

/**
 * A handler's context. A class rather than an object literal with a getter:
 * V8 gives each such literal a map of its own, allocated in old space, which
 * keeps every call's objects alive until a full collection.
 */
class CallContext implements ToolContext {
  readonly call: SubCall;
  readonly #lease: Capability;
  #watcher: ReturnType<typeof revocationSignal> | null = null;

  constructor(
    readonly tenant: string | null,
    readonly dispatcher: Dispatcher,
    lease: Capability,
  ) {
    this.call = dispatcher.call;
    this.#lease = lease;
    Object.freeze(this);
  }

  // Made on first use: most handlers never look at it, and watching costs one subscription per revocable link.
  get signal(): AbortSignal {
    this.#watcher ??= revocationSignal(this.#lease);
    return this.#watcher.signal;
  }

  static {
    // Module-private: only the dispatcher ends a context's watch, when the call settles.
    disposeContext = (context) => context.#watcher?.dispose();
  }
}
