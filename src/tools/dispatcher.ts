import { caretaker, checkTrusted, defined, failureOutcome, holdIntent, isAuditSink, liveDenial, trustedMintsOption, untrustedMint } from "../kernel/internal.js";
import {
  authorize,
  check,
  clockTime,
  denialError,
  ForeignFailure,
  InvalidInput,
  isCapability,
  narrow,
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
import { implementationOf, isTool, type AnyTool, type CallOptions, type JsonSchema, type SubCall, type ToolContext } from "./define.js";
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
  const registry = new Map<string, AnyTool>();
  for (const [i, tool] of tools.entries()) {
    if (!isTool(tool)) throw new InvalidInput(`tools.${i} is not a tool made by defineTool`);
    if (registry.has(tool.name)) throw new InvalidInput(`tools.${i}: a tool named ${tool.name} is already registered`);
    registry.set(tool.name, tool);
  }

  const resolve = (ref: unknown): string => {
    if (typeof ref === "string") return ref;
    if (isTool(ref) && registry.get(ref.name) === ref) return ref.name;
    throw new InvalidInput("call expects a tool registered with this dispatcher, or its name");
  };

  /** A call; `mayAsk` is false for the call an approval resumes, which must not ask again. */
  const dispatch = async (ref: unknown, input: unknown, capability: Capability, callOptions: CallOptions | undefined, mayAsk: boolean): Promise<unknown> => {
    if (!isCapability(capability)) throw new NotACapability("a tool call needs the caller's capability; nothing else carries authority");
    const name = resolve(ref);
    const registered = registry.get(name);
    const toolCode = registered === undefined ? undefined : implementationOf(registered).code;
    const tenant = tenantFor(capability, callOptions);
    const startedMs = performance.now();
    const at = clockTime(capability);
    const toolRequest: ToolRequest = { action: "tool.call", tool: name, ...(tenant === null ? {} : { tenant }) };
    // Deciding `tool.call` first means a tool the capability does not reach is denied whatever its input: designation is authorization.
    // Until this decision exists there is no invocation to record: a call that cannot name a tool (or a tenant) is refused without an event.
    let request: Request = toolRequest;
    let decision: Decision = checkTrusted(trusted, capability, toolRequest);
    let ready: { readonly tool: AnyTool; readonly plan: CallPlan; readonly approval: Approvals | null };
    try {
      // A call waiting only for approval is worked out first: approvers are shown its exact arguments and needs.
      if (!decision.allowed && !asksApproval(decision)) throw denialError(decision);
      if (registered === undefined) throw new InvalidInput(`no tool named ${name} is registered with this dispatcher`);
      const plan = await planCall(registered, input, needsContext(capability, tenant));
      let needShadow: ShadowDenial | undefined;
      for (const need of plan.needs) {
        const d = check(capability, need);
        if (!d.allowed && !asksApproval(d)) {
          [request, decision] = [need, d];
          throw denialError(d);
        }
        if (d.allowed) needShadow ??= d.shadow;
      }
      const args = { args: plan.input };
      const now = check(capability, toolRequest, args);
      const needApproval = plan.needs.some((need) => !check(capability, need).allowed);
      if (mayAsk && approvals !== undefined && (asksApproval(now) || needApproval)) {
        ready = { tool: registered, plan, approval: approvals };
      } else {
        decision = authorize(capability, toolRequest, args);
        if (!decision.allowed) throw denialError(decision);
        // A grant attached in shadow is asked about the whole call: the first need it would deny is the call's disagreement.
        if (decision.shadow === undefined && needShadow !== undefined) decision = { ...decision, shadow: needShadow };
        ready = { tool: registered, plan, approval: null };
      }
    } catch (e) {
      // Refused before the handler ran: nothing acted, so the call is one event.
      await writeToolEvent(sink, { at, tool: name, toolCode, request, decision, capability }, startedMs, failureOutcome(e));
      throw ForeignFailure.of(e);
    }
    if (ready.approval !== null) {
      // Suspended, not refused: the approval flow records each step, and the approved call is dispatched like any other.
      const { plan } = ready;
      const waiting = callOptions?.approval;
      return ready.approval.run(capability, toolRequest, { tool: name, args: plan.input, needs: plan.needs, ...defined({ onPending: waiting?.onPending, signal: waiting?.signal }) }, (approved) =>
        dispatch(ref, input, approved, callOptions, false),
      );
    }
    // Record, then act: the handler runs only once the intent is durable, and only if the capability is still live. A built-in
    // tool acts only through resources, so its intent is held on the handler's capability and written with the first access's
    // (one transaction, not two in turn); it is durable before the call answers either way.
    const intent = toolIntent({ at, tool: name, toolCode, request, decision, capability });
    const confined = implementationOf(ready.tool).confined;
    const record = () => recordToolIntent(sink, intent, capability, confined);
    if (!confined) await record();
    const held: { flush: () => Promise<void> } = { flush: record };
    const hold = confined ? (lease: Capability) => (held.flush = holdIntent(lease, record)) : null;
    let outcome: AuditOutcome;
    let result: unknown;
    let thrown: { error: unknown } | null = null;
    try {
      const dead = liveDenial(capability);
      if (dead !== null) throw denialError(dead);
      result = await runHandler(ready.tool, ready.plan, capability, tenant, dispatcher, hold);
      outcome = succeeded(result);
    } catch (e) {
      thrown = { error: e };
      outcome = failureOutcome(e);
    }
    if (confined) await held.flush();
    await completeToolCall(sink, intent, startedMs, outcome);
    // Whatever a handler threw reaches the caller as an AgentcapError (ForeignFailure keeps the original as its cause).
    if (thrown !== null) throw ForeignFailure.of(thrown.error);
    return result;
  };

  const call = ((ref: unknown, input: unknown, capability: Capability, callOptions?: CallOptions) => dispatch(ref, input, capability, callOptions, true)) as SubCall;

  const dispatcher: Dispatcher = Object.freeze({
    call,
    catalog: (capability: Capability, callOptions?: CallOptions): readonly CatalogEntry[] => {
      const tenant = tenantFor(capability, callOptions);
      const reached = [...registry.values()].filter((t) => {
        const d = checkTrusted(trusted, capability, { action: "tool.call", tool: t.name, ...(tenant === null ? {} : { tenant }) });
        return d.allowed || asksApproval(d);
      });
      return Object.freeze(reached.map((t) => Object.freeze({ name: t.name, description: t.description, inputSchema: t.inputSchema })));
    },
    tool: (name: string) => registry.get(name),
    plan: async (ref: AnyTool | string, input: unknown, capability: Capability, callOptions?: CallOptions) => {
      if (!isCapability(capability)) throw new NotACapability("planning a call needs the capability it would run under");
      // Working out needs looks at resources: a root from an untrusted mint gets no further than its denial.
      const untrusted = untrustedMint(capability, trusted);
      if (untrusted !== null) throw denialError(untrusted);
      const name = resolve(ref);
      const tool = registry.get(name);
      if (tool === undefined) throw new InvalidInput(`no tool named ${name} is registered with this dispatcher`);
      return planCall(tool, input, needsContext(capability, tenantFor(capability, callOptions)));
    },
  });
  return dispatcher;
}

/**
 * Runs the handler with a capability narrowed to the plan's grant, behind a
 * revocable forwarder that is revoked as soon as the call settles, so a
 * handler that keeps its capability past the call holds nothing. `hold`
 * gets that capability first, to hold the call's intent on it.
 */
async function runHandler(
  tool: AnyTool,
  plan: CallPlan,
  capability: Capability,
  tenant: string | null,
  dispatcher: Dispatcher,
  hold: ((lease: Capability) => unknown) | null,
): Promise<unknown> {
  const lease = caretaker(narrow(capability, plan.grant), { tool: tool.name });
  hold?.(lease.capability);
  const watcher: { current: ReturnType<typeof revocationSignal> | null } = { current: null };
  const context: ToolContext = Object.freeze({
    tenant,
    call: dispatcher.call,
    dispatcher,
    // Made on first use: most handlers never look at it, and watching costs one subscription per revocable link.
    get signal() {
      watcher.current ??= revocationSignal(lease.capability);
      return watcher.current.signal;
    },
  });
  try {
    return await implementationOf(tool).handler(plan.input, lease.capability, context);
  } finally {
    lease.revoke(`the call to tool ${tool.name} has returned`);
    watcher.current?.dispose();
  }
}
