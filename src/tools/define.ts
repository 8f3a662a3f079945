import { z } from "zod";
import { InvalidInput, type ApprovalView, type Capability, type LinkSummary, type ReachOfRequests, type Request, type ToolCode } from "../kernel/index.js";
import { deepFreeze, describeIssues, snapshotPlainData, type PlainData } from "../kernel/internal.js";
import type { Dispatcher } from "./dispatcher.js";

/**
 * What `needs` may know besides the input: the tenant the call acts for, and
 * the caller's capability as loggable data (grants and conditions, no
 * authority), for tools whose requests depend on the grant, such as a
 * database query whose row scope comes from the capability's chain.
 */
export interface NeedsContext {
  readonly tenant: string | null;
  readonly lineage: readonly LinkSummary[];
}

/** Options of one dispatched call. */
export interface CallOptions {
  /**
   * The tenant the call acts for. Defaults to the capability's only minted
   * tenant, if it was minted for exactly one; every need without a tenant is
   * stamped with it.
   */
  readonly tenant?: string;
  /**
   * For a call that waits for human approval (the dispatcher has an
   * approval flow): `onPending` is told once its request is recorded, and
   * aborting `signal` stops waiting, cancels the request and fails the call.
   */
  readonly approval?: { readonly onPending?: (request: ApprovalView) => void; readonly signal?: AbortSignal };
}

/**
 * What a handler gets besides its input and capability. None of it carries
 * authority: `call` only dispatches with the capability it is given.
 */
export interface ToolContext {
  /** The tenant the call acts for. */
  readonly tenant: string | null;
  /** Fires (with a Revoked error) when the handler's capability dies: its task was revoked, or the call has returned. */
  readonly signal: AbortSignal;
  /** Calls another registered tool with a capability the handler holds; the sub-tool is narrowed again to its own needs. */
  readonly call: SubCall;
  /** The dispatcher running this call, for handlers that run an agent of their own (it holds no authority). */
  readonly dispatcher: Dispatcher;
}

/** Dispatches a sub-tool call: typed when given the tool itself, `unknown` when given its name. */
export interface SubCall {
  <In, Out>(tool: Tool<In, Out>, input: In, capability: Capability, options?: CallOptions): Promise<Out>;
  (tool: string, input: unknown, capability: Capability, options?: CallOptions): Promise<unknown>;
}

/**
 * A tool's implementation: `(input, capability)`, and the capability is its
 * only source of authority. `R` is the capability's reach: what the tool's
 * needs name, so passing it where more is required does not compile.
 */
export type ToolHandler<In, Out, R = unknown> = (input: In, capability: Capability<R>, context: ToolContext) => Out | Promise<Out>;

/** Names the requests a call will make, from its validated input; the dispatcher narrows the caller's capability to exactly these. */
export type NeedsFunction<In, Q extends Request = Request> = (input: In, context: NeedsContext) => readonly Q[] | Promise<readonly Q[]>;

/** How a tool is declared: a name and description for the model, a zod object schema for its input, and its needs. */
export interface ToolSpec<S extends z.ZodObject, Q extends Request = Request> {
  readonly name: string;
  readonly description: string;
  readonly input: S;
  readonly needs: NeedsFunction<z.output<S>, Q>;
}

/** The JSON schema of a tool's input, as shown to a model. */
export type JsonSchema = Readonly<Record<string, unknown>>;

declare const signature: unique symbol;

/**
 * A defined tool: frozen, and its handler reachable only by the dispatcher.
 * `In` is what callers pass (before validation), `Out` what the handler returns.
 */
export interface Tool<In = never, Out = unknown> {
  readonly name: string;
  readonly description: string;
  readonly input: z.ZodObject;
  /** The input's JSON schema: derived from `input` alone, so it can never contain a capability. */
  readonly inputSchema: JsonSchema;
  /** Type-level only: makes `Tool` contravariant in its input and covariant in its output. */
  readonly [signature]?: (input: In) => Out;
}

/** Any tool, whatever its input and output types. */
export type AnyTool = Tool;

/** The parts of a tool only the dispatcher uses. */
export interface ToolImplementation {
  readonly needs: NeedsFunction<unknown>;
  readonly handler: ToolHandler<unknown, unknown>;
  /** How the code of a tool loaded from a tool module runs; undefined for a tool the application defines in-process. */
  readonly code: ToolCode | undefined;
  /**
   * Whether the handler acts only through the agentcap resources it is given
   * (agentcap's built-in tools): then the call's intent need only be durable
   * before the handler's first resource access, and is written with it.
   */
  readonly confined: boolean;
  /**
   * Told that the dispatcher asked for the needs of `input` and will not run
   * the handler with it (refused, suspended for approval, or only planned):
   * a tool whose needs started work ahead of the handler (a sandboxed
   * module's) drops it. Undefined for the others.
   */
  readonly release: ((input: unknown) => void) | undefined;
}

const implementations = new WeakMap<AnyTool, ToolImplementation>();

/** Tool names are what model providers accept as function names. */
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Defines a tool. Throws InvalidInput when the name, description or input
 * schema is unusable, including an input schema that cannot be shown to a
 * model as JSON schema (such as a field holding a capability).
 */
export function defineTool<S extends z.ZodObject, Out, Q extends Request = Request>(
  spec: ToolSpec<S, Q>,
  handler: ToolHandler<z.output<S>, Out, ReachOfRequests<Q>>,
): Tool<z.input<S>, Out> {
  return makeTool(spec, handler, undefined, false);
}

/**
 * Defines one of agentcap's built-in tools, whose handler acts only through
 * the resources it is given (see ToolImplementation.confined).
 */
export function defineBuiltinTool<S extends z.ZodObject, Out, Q extends Request = Request>(
  spec: ToolSpec<S, Q>,
  handler: ToolHandler<z.output<S>, Out, ReachOfRequests<Q>>,
): Tool<z.input<S>, Out> {
  return makeTool(spec, handler, undefined, true);
}

/**
 * Defines a tool loaded from a tool module, recording how its code runs, so
 * that every audit event of the tool says so. For the sandbox layer only.
 */
export function defineModuleTool(spec: ToolSpec<z.ZodObject>, handler: ToolHandler<unknown, unknown>, code: ToolCode, release?: (input: unknown) => void): AnyTool {
  return makeTool(spec, handler, code, false, release);
}

/**
 * The same tool (name, description, input, needs) with another handler and a
 * record of how that handler's code runs: the sandbox layer runs the
 * handlers of agentcap's built-in tools in a sandbox this way, while their
 * needs stay agentcap's own. For the sandbox layer only.
 */
export function rehostTool(tool: AnyTool, code: ToolCode, handler: ToolHandler<unknown, unknown> = implementationOf(tool).handler): AnyTool {
  const impl = implementationOf(tool);
  return makeTool({ name: tool.name, description: tool.description, input: tool.input, needs: impl.needs }, handler, code, impl.confined);
}

function makeTool<S extends z.ZodObject, Out, Q extends Request>(
  spec: ToolSpec<S, Q>,
  handler: ToolHandler<z.output<S>, Out, ReachOfRequests<Q>>,
  code: ToolCode | undefined,
  confined: boolean,
  release?: (input: unknown) => void,
): Tool<z.input<S>, Out> {
  const own = <K extends keyof ToolSpec<S, Q>>(k: K): ToolSpec<S, Q>[K] | undefined => (Object.hasOwn(spec, k) ? spec[k] : undefined);
  const [name, description, input, needs] = [own("name"), own("description"), own("input"), own("needs")];
  if (typeof name !== "string" || !TOOL_NAME.test(name)) {
    throw new InvalidInput(`tool name must be 1 to 64 letters, digits, _ or -; got ${JSON.stringify(name)}`);
  }
  if (typeof description !== "string" || description.trim().length === 0) {
    throw new InvalidInput(`tool ${name}: description must be a non-empty string; the model chooses tools by it`);
  }
  if (!(input instanceof z.ZodObject)) throw new InvalidInput(`tool ${name}: input must be a zod object schema (z.object({...}))`);
  if (typeof needs !== "function") throw new InvalidInput(`tool ${name}: needs must be a function from input to the requests the call makes`);
  if (typeof handler !== "function") throw new InvalidInput(`tool ${name}: handler must be a function (input, capability) => result`);
  const tool: Tool<z.input<S>, Out> = Object.freeze({ name, description, input, inputSchema: inputJsonSchema(name, input) });
  implementations.set(tool, Object.freeze({ needs: needs as NeedsFunction<unknown>, handler: handler as ToolHandler<unknown, unknown>, code, confined, release }));
  return tool;
}

function inputJsonSchema(name: string, input: z.ZodObject): JsonSchema {
  let schema: Record<string, unknown>;
  try {
    schema = z.toJSONSchema(input, { io: "input", unrepresentable: "throw", target: "draft-07" });
  } catch (e) {
    throw new InvalidInput(
      `tool ${name}: input schema cannot be shown to a model as JSON schema (${e instanceof Error ? e.message : String(e)}); ` +
        "inputs are plain data, and authority travels only as the handler's capability argument",
    );
  }
  return deepFreeze(schema);
}

/** Dispatcher only: the needs and handler of a tool made by `defineTool`. Throws InvalidInput for anything else. */
export function implementationOf(tool: AnyTool): ToolImplementation {
  const found = implementations.get(tool);
  if (found === undefined) throw new InvalidInput("expected a tool made by defineTool");
  return found;
}

/** The arguments needs were bound to by bindArguments, by the need object itself. */
const boundArguments = new WeakMap<object, PlainData>();

/**
 * Declares, in a tool's needs, that the call will make `request` with
 * exactly `args` (plain data; a database write's query as the handler will
 * pass it). Returns the request, to list among the needs. When the call
 * waits for approval, the approval binds such a database write to those
 * arguments: the approved capability then allows no database write but the
 * bound ones, so a handler cannot make another write (other values, rows,
 * model) under the approval.
 */
export function bindArguments<Q extends Request>(request: Q, args: unknown): Q {
  const bound = Object.freeze({ ...request }) as unknown as Q;
  boundArguments.set(bound, snapshotPlainData(args, "arguments"));
  return bound;
}

/** The arguments `need` was bound to by bindArguments, if any. */
export function argumentsOf(need: unknown): PlainData | undefined {
  return typeof need === "object" && need !== null ? boundArguments.get(need) : undefined;
}

/** Whether `value` is a tool made by `defineTool`. */
export function isTool(value: unknown): value is AnyTool {
  return typeof value === "object" && value !== null && implementations.has(value as AnyTool);
}

/**
 * The needs of calling `tool` from inside another tool: the `tool.call`
 * itself and the sub-tool's own needs. A parent lists these in its needs so
 * its narrowed capability still covers the sub-call.
 */
export async function subToolNeeds<In>(tool: Tool<In>, input: In, context: NeedsContext): Promise<readonly Request[]> {
  const impl = implementationOf(tool);
  const parsed = parseToolInput(tool, input);
  let needs: readonly Request[];
  try {
    needs = await impl.needs(parsed, context);
  } finally {
    // Only the needs are wanted here: the sub-call itself parses its input again, so nothing will run a handler with this one.
    impl.release?.(parsed);
  }
  return [{ action: "tool.call", tool: tool.name, ...(context.tenant === null ? {} : { tenant: context.tenant }) }, ...needs];
}

/** Validates a call's input against the tool's schema; throws InvalidInput naming each bad field. */
export function parseToolInput(tool: AnyTool, input: unknown): unknown {
  const parsed = tool.input.safeParse(input);
  if (!parsed.success) throw new InvalidInput(describeIssues(`input for tool ${tool.name}`, parsed.error));
  return parsed.data;
}
