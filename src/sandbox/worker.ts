/*
 * The sandbox: a worker thread that locks itself down with SES and runs one
 * tool module inside a Compartment. Tool code there sees the JavaScript
 * intrinsics (frozen, shared; no clock, no randomness), the modules of its
 * allowlist (evaluated inside the same Compartment, so they are confined
 * too), `defineTool`, and per call its input, a capability reference and its
 * context. Everything else it could reach (`process`, `require`, timers,
 * `import()`, the worker's own message port) lives outside the Compartment.
 *
 * This file runs in the worker only. It imports nothing of agentcap at run
 * time (only the message types), and it must stay erasable TypeScript: from
 * the source tree Node strips its types, from the package it is compiled.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { CapabilityRef, HostError, HostMessage, Thrown, ToolInfo, WorkerInit, WorkerMessage } from "./protocol.js";

/** The specifier tool modules import `defineTool` from; inside a sandbox it exports nothing else. */
const FORMAT_SPECIFIER = "agentcap/sandbox";

interface Compartment {
  readonly globalThis: Readonly<Record<string, unknown>>;
  evaluate(source: string, options?: Readonly<Record<string, unknown>>): unknown;
}

interface Ses {
  lockdown(options: Readonly<Record<string, string>>): void;
  harden<T>(value: T): T;
  readonly Compartment: new (options: Readonly<Record<string, unknown>>) => Compartment;
}

type ErrorConstructorLike = new (message: string) => Error;

interface ParseResult {
  readonly success: boolean;
  readonly data?: unknown;
  readonly error?: { readonly issues?: unknown };
}

/** A tool as `defineTool` recorded it inside the sandbox. */
interface SandboxedTool {
  readonly name: string;
  readonly description: string;
  readonly input: {
    safeParse(input: unknown): ParseResult;
    safeParseAsync(input: unknown): Promise<ParseResult>;
  };
  readonly needs: (input: unknown, context: unknown) => unknown;
  readonly handler: (input: unknown, capability: unknown, context: unknown) => unknown;
}

/** Longest name or message taken from sandboxed code. */
const MAX_TEXT = 2000;

/**
 * Names of Node's and the web's ambient authority that tool code may reach
 * for. None exists in a Compartment (reading one there gives undefined). In
 * the tool module's own code each is bound to a poisoned value, so a direct
 * use fails with a SandboxViolation naming it. Allowlisted modules do not get
 * them: they probe `typeof process` and the like to detect their platform,
 * and must see nothing there.
 */
const POISONED = new Map<string, string>([
  ...["process", "global", "Buffer", "__dirname", "__filename"].map((n): [string, string] => [n, `${n} (Node's ambient authority)`]),
  ...["setTimeout", "setInterval", "setImmediate", "clearTimeout", "clearInterval", "clearImmediate", "queueMicrotask"].map((n): [string, string] => [n, `${n} (timers)`]),
  ...["fetch", "XMLHttpRequest", "WebSocket", "EventSource", "Worker", "SharedWorker", "MessageChannel", "MessagePort", "BroadcastChannel", "navigator"].map(
    (n): [string, string] => [n, `${n} (network and threads)`],
  ),
  ...["SharedArrayBuffer", "Atomics", "WebAssembly", "performance", "crypto", "structuredClone", "console", "WeakRef", "FinalizationRegistry"].map(
    (n): [string, string] => [n, `${n} (not among a sandbox's intrinsics)`],
  ),
  ["__import__", "dynamic import()"],
]);

if (parentPort === null) throw new Error("the agentcap sandbox runs only as a worker thread");
const port = parentPort;
const post = (message: WorkerMessage): void => {
  port.postMessage(message);
};
const init = workerData as WorkerInit;

let ses: Ses;
try {
  // Resolved by the application; not a literal specifier, so the shim's global declarations stay out of agentcap's types.
  await import(init.ses);
  ses = globalThis as unknown as Ses;
  // Every option that matters is explicit: the worker's environment is empty, and LOCKDOWN_* variables must not weaken it anyway.
  ses.lockdown({
    errorTaming: "safe",
    evalTaming: "safe-eval",
    consoleTaming: "safe",
    localeTaming: "safe",
    regExpTaming: "safe",
    domainTaming: "safe",
    overrideTaming: "moderate",
    stackFiltering: "concise",
    errorTrapping: "report",
    unhandledRejectionTrapping: "report",
    reporting: "none",
  });
} catch (e) {
  post({ t: "failed", error: { kind: "internal", message: `SES could not lock the sandbox down: ${text(() => String(e))}` } });
  throw e;
}

const compartment = new ses.Compartment({ __options__: true, globals: {}, name: init.tool.filename });
// Errors handed to tool code are made by the Compartment's own constructors, never the worker's (which keep V8's stack hooks).
const SharedError = compartment.globalThis.Error as ErrorConstructorLike;
const SharedTypeError = compartment.globalThis.TypeError as ErrorConstructorLike;

const violationMessages = new WeakMap<object, string>();
const hostErrors = new WeakMap<object, HostError>();
const capabilityRefs = new WeakMap<object, CapabilityRef>();
const definitions = new WeakMap<object, SandboxedTool>();

/** An error for tool code that says what the sandbox refused; it stays a violation however often it is rethrown. */
function violation(message: string): Error {
  const error = new SharedError(message);
  Object.defineProperties(error, { name: { value: "SandboxViolation" }, code: { value: "ERR_SANDBOX_VIOLATION" } });
  violationMessages.set(error, message);
  return ses.harden(error);
}

function refusedGlobal(what: string): string {
  return `sandboxed tool code cannot reach ${what}: its only authority is the capability passed to each handler, and what the application endowed`;
}

function refusedImport(specifier: string): string {
  if (specifier === "agentcap" || specifier.startsWith("agentcap/")) {
    return `sandboxed tool code cannot import ${specifier}: nothing of agentcap (mint, kernel, resources) is reachable from a sandbox; only defineTool, from ${FORMAT_SPECIFIER}`;
  }
  const allowed = [FORMAT_SPECIFIER, ...init.modules.map((m) => m.specifier)].join(", ");
  return `sandboxed tool code cannot import ${JSON.stringify(specifier)}: a tool module may import only its own files and its allowlist (${allowed})`;
}

/** Reads a name or message from sandboxed code, which may throw or loop: only a bounded string comes out. */
function text(read: () => unknown): string {
  try {
    const value = read();
    if (value === undefined) return "";
    // A thrown object's own toString is exactly what should describe it; it runs here, in the sandbox, under its time limit.
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    return (typeof value === "string" ? value : String(value)).slice(0, MAX_TEXT);
  } catch {
    return "(unreadable)";
  }
}

function isObject(value: unknown): value is object {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

/** What sandboxed code threw, as plain data for the host. */
function describe(thrown: unknown): Thrown {
  if (isObject(thrown)) {
    const refused = violationMessages.get(thrown);
    if (refused !== undefined) return { kind: "violation", message: refused };
    const host = hostErrors.get(thrown);
    if (host !== undefined) return { kind: "host", error: host };
    return { kind: "tool", name: text(() => (thrown as { name?: unknown }).name) || "Error", message: text(() => (thrown as { message?: unknown }).message) };
  }
  return { kind: "tool", name: typeof thrown, message: text(() => String(thrown)) };
}

// ---------------------------------------------------------------------------
// Modules: CommonJS function bodies evaluated inside the Compartment.

const bundles = new Map(init.modules.map((m) => [m.specifier, m.code]));
const loaded = new Map<string, { exports: unknown }>();

/** A value that refuses every operation with a violation naming what tool code reached for. */
function poisoned(what: string): unknown {
  const refuse = (): never => {
    throw violation(refusedGlobal(what));
  };
  const traps = ["get", "set", "has", "apply", "construct", "ownKeys", "getOwnPropertyDescriptor", "defineProperty", "deleteProperty", "getPrototypeOf", "setPrototypeOf", "isExtensible", "preventExtensions"];
  // A function target (not an arrow), so that `new` reaches the construct trap too.
  return new Proxy(function poisonedValue() {
    return undefined;
  }, Object.fromEntries(traps.map((trap) => [trap, refuse])));
}

const poisonedNames = [...POISONED.keys()];
const poisonedValues = [...POISONED.values()].map(poisoned);

/**
 * Evaluates a CommonJS body in the Compartment. The tool module's own code
 * (`specifier` null) gets the poisoned names; an allowlisted module is
 * remembered before it runs, as CommonJS does for cycles.
 */
function evaluateModule(code: string, name: string, specifier: string | null): { exports: unknown } {
  const sourceUrl = name.replace(/[^\w./@-]/g, "_");
  const parameters = ["module", "exports", "require", ...(specifier === null ? poisonedNames : [])].join(", ");
  const wrapper = compartment.evaluate(`(function (${parameters}) {${code}\n})\n//# sourceURL=${sourceUrl}\n`, {
    // `import(` left in a string or comment would otherwise reject the whole module; a real one fails as a refused import.
    __evadeImportExpressionTest__: true,
    __evadeHtmlCommentTest__: true,
    // A direct eval runs as the Compartment's own (confined) eval.
    __rejectSomeDirectEvalExpressions__: false,
  }) as (module: object, exports: unknown, require: (specifier: unknown) => unknown, ...poisoned: unknown[]) => void;
  const module = { exports: {} as unknown };
  if (specifier !== null) loaded.set(specifier, module);
  wrapper(module, module.exports, sandboxRequire, ...(specifier === null ? poisonedValues : []));
  return module;
}

function sandboxRequire(specifier: unknown): unknown {
  if (typeof specifier !== "string") throw violation(refusedImport(text(() => String(specifier))));
  if (specifier === FORMAT_SPECIFIER) return format;
  const hit = loaded.get(specifier);
  if (hit !== undefined) return hit.exports;
  const code = bundles.get(specifier);
  if (code === undefined) throw violation(refusedImport(specifier));
  return evaluateModule(code, specifier, specifier).exports;
}

// ---------------------------------------------------------------------------
// defineTool, as the sandbox offers it: a description the host turns into a tool.

const format = ses.harden({
  defineTool(spec: unknown, handler: unknown): object {
    const field = (key: string): unknown => (isObject(spec) && Object.hasOwn(spec, key) ? (spec as Record<string, unknown>)[key] : undefined);
    const [name, description, input, needs] = [field("name"), field("description"), field("input"), field("needs")];
    if (typeof name !== "string") throw new SharedTypeError("defineTool: name must be a string");
    if (typeof description !== "string") throw new SharedTypeError(`defineTool ${name}: description must be a string`);
    const parsing = input as { safeParse?: unknown; safeParseAsync?: unknown } | null;
    if (!isObject(input) || typeof parsing?.safeParse !== "function" || typeof parsing.safeParseAsync !== "function") {
      throw new SharedTypeError(`defineTool ${name}: input must be a zod object schema`);
    }
    if (typeof needs !== "function") throw new SharedTypeError(`defineTool ${name}: needs must be a function`);
    if (typeof handler !== "function") throw new SharedTypeError(`defineTool ${name}: handler must be a function`);
    const tool = ses.harden({ name, description });
    definitions.set(tool, {
      name,
      description,
      input: input as SandboxedTool["input"],
      needs: needs as SandboxedTool["needs"],
      handler: handler as SandboxedTool["handler"],
    });
    return tool;
  },
});

// ---------------------------------------------------------------------------
// Capabilities and endowments: references whose every use is a request to the host.

let nextRequest = 0;
const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();

function ask(message: WorkerMessage & { t: "use" | "call" }, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    try {
      port.postMessage(message);
      waiting.set(message.id, { resolve, reject });
    } catch {
      reject(new SharedTypeError(`${what}: arguments must be plain data (no functions, capabilities or class instances with private state)`));
    }
  });
}

function hostError(error: HostError): Error {
  const made = new SharedError(error.message);
  Object.defineProperties(made, { name: { value: error.name }, code: { value: error.code } });
  hostErrors.set(made, error);
  return ses.harden(made);
}

function capabilityOf(value: unknown, what: string): CapabilityRef {
  const ref = isObject(value) ? capabilityRefs.get(value) : undefined;
  if (ref === undefined) throw violation(`${what} needs a capability given to a handler; nothing else carries authority, and none can be made in a sandbox`);
  return ref;
}

/** What every capability reference inherits: only a name for it, hardened once. */
const capabilityPrototype = ses.harden({ [Symbol.toStringTag]: "Capability" });

/** An opaque reference to the capability `ref` stands for: nothing can be read from it, and nothing but this file can make one. */
function capability(ref: CapabilityRef): object {
  const made = Object.freeze(Object.create(capabilityPrototype) as object);
  capabilityRefs.set(made, ref);
  return made;
}

/** `context.narrow`: a reference to `cap` narrowed by `grant`, which the kernel checks when the reference is first used. */
function narrowed(cap: unknown, grant: unknown): object {
  const ref = capabilityOf(cap, "narrow");
  let copy: unknown;
  try {
    copy = structuredClone(grant);
  } catch {
    throw new SharedTypeError("narrow expects a grant of plain data");
  }
  return capability({ call: ref.call, grants: [...ref.grants, copy] });
}

function remoteObject(name: string, data: Readonly<Record<string, unknown>>, methods: readonly string[]): object {
  const entries = methods.map((method): [string, unknown] => [
    method,
    async (cap: unknown, ...args: unknown[]): Promise<unknown> => {
      const what = `${name}.${method}`;
      return ask({ t: "use", id: ++nextRequest, cap: capabilityOf(cap, what), endowment: name, method, args }, what);
    },
  ]);
  return { ...data, ...Object.fromEntries(entries) };
}

const endowments = ses.harden(
  Object.fromEntries(Object.entries(init.endowments).map(([name, shape]) => [name, shape.kind === "data" ? shape.value : remoteObject(name, shape.data, shape.methods)])),
);

const narrow = ses.harden(narrowed);

async function subCall(from: number, tool: unknown, input: unknown, cap: unknown, options: unknown): Promise<unknown> {
  const name = isObject(tool) ? definitions.get(tool)?.name : tool;
  if (typeof name !== "string") throw new SharedTypeError("call expects a tool name");
  const tenant = isObject(options) && Object.hasOwn(options, "tenant") ? (options as { tenant: unknown }).tenant : null;
  if (tenant !== null && typeof tenant !== "string") throw new SharedTypeError("call: tenant must be a string");
  return ask({ t: "call", id: ++nextRequest, from, cap: capabilityOf(cap, `call(${name})`), tool: name, input, tenant }, `call(${name})`);
}

// ---------------------------------------------------------------------------
// Loading the tool module, then serving the host.

const tools = new Map<string, SandboxedTool>();

function load(): ToolInfo[] {
  const exported = evaluateModule(init.tool.code, init.tool.filename, null).exports;
  const found = new Set<SandboxedTool>();
  if (isObject(exported)) {
    for (const key of Object.keys(exported)) {
      const value = (exported as Record<string, unknown>)[key];
      const tool = isObject(value) ? definitions.get(value) : undefined;
      if (tool !== undefined) found.add(tool);
    }
  }
  const zod = sandboxRequire("zod") as { toJSONSchema: (schema: unknown, options: unknown) => unknown };
  const infos: ToolInfo[] = [];
  for (const tool of found) {
    if (tools.has(tool.name)) throw new SharedTypeError(`the module defines two tools named ${tool.name}`);
    tools.set(tool.name, tool);
    let inputSchema: unknown;
    try {
      inputSchema = zod.toJSONSchema(tool.input, { io: "input", unrepresentable: "throw", target: "draft-07" });
    } catch (e) {
      throw new SharedTypeError(`tool ${tool.name}: its input schema cannot be shown to a model as JSON schema (${describeText(e)})`);
    }
    infos.push({ name: tool.name, description: tool.description, inputSchema: inputSchema as Readonly<Record<string, unknown>> });
  }
  return infos;
}

function describeText(thrown: unknown): string {
  const d = describe(thrown);
  return d.kind === "tool" ? `${d.name}: ${d.message}` : d.kind === "host" ? d.error.message : d.message;
}

async function parse(tool: SandboxedTool, input: unknown): Promise<unknown> {
  let result: ParseResult;
  try {
    result = tool.input.safeParse(input);
  } catch {
    // A schema with asynchronous refinements refuses to parse synchronously.
    result = await tool.input.safeParseAsync(input);
  }
  if (result.success) return result.data;
  const issues = result.error?.issues;
  const message = Array.isArray(issues)
    ? issues
        .map((issue: unknown) => {
          const at = text(() => (issue as { path: unknown[] }).path.join("."));
          return `${at === "" ? "(input)" : at}: ${text(() => (issue as { message?: unknown }).message)}`;
        })
        .join("; ")
    : "does not match the tool's schema";
  throw new InputRefused(message.slice(0, MAX_TEXT));
}

/** Input the tool's own schema refused: reported as InvalidInput, not as the tool's failure. Never reaches tool code. */
class InputRefused extends Error {}

/** Sends a step's value to the host; false when it is not plain data (the host then hears why instead). */
function report(t: "needs" | "done", id: number, value: unknown, what: string): boolean {
  try {
    post({ t, id, ok: true, value });
    return true;
  } catch (e) {
    post({ t, id, ok: false, error: { kind: "unclonable", message: `${what} is not plain data and cannot leave the sandbox (${text(() => String(e))})` } });
    return false;
  }
}

function thrownBy(thrown: unknown): Thrown {
  return thrown instanceof InputRefused ? { kind: "input", message: thrown.message } : describe(thrown);
}

function toolNamed(name: string): SandboxedTool {
  const tool = tools.get(name);
  if (tool === undefined) throw violation(`the module defines no tool named ${name}`);
  return tool;
}

/** Runs one call: for `start`, its needs first (reported at once), then its handler; for `run`, the handler alone. */
async function runCall(message: HostMessage & { t: "start" | "run" }): Promise<void> {
  let tool: SandboxedTool;
  let input: unknown;
  try {
    tool = toolNamed(message.tool);
    input = await parse(tool, message.input);
    if (message.t === "start") {
      const needs = await tool.needs(input, Object.freeze({ tenant: message.tenant, endowments }));
      if (!report("needs", message.id, needs, `what needs of tool ${tool.name} returned`)) return;
    }
  } catch (e) {
    post({ t: message.t === "start" ? "needs" : "done", id: message.id, ok: false, error: thrownBy(e) });
    return;
  }
  try {
    const from = message.id;
    const call = Object.freeze((name: unknown, subInput: unknown, cap: unknown, options?: unknown) => subCall(from, name, subInput, cap, options));
    const context = Object.freeze({ tenant: message.tenant, endowments, narrow, call });
    const value = await tool.handler(input, capability({ call: message.id, grants: [] }), context);
    report("done", message.id, value, `what tool ${tool.name} returned`);
  } catch (e) {
    post({ t: "done", id: message.id, ok: false, error: thrownBy(e) });
  }
}

function serve(message: HostMessage): void {
  if (message.t === "ping") {
    post({ t: "pong", id: message.id });
    return;
  }
  if (message.t !== "reply") {
    void runCall(message);
    return;
  }
  const pending = waiting.get(message.id);
  if (pending === undefined) return;
  waiting.delete(message.id);
  if (message.ok) pending.resolve(message.value);
  else pending.reject(hostError(message.error));
}

try {
  post({ t: "ready", tools: load() });
  port.on("message", serve);
} catch (e) {
  let error: Thrown = describe(e);
  if (error.kind === "tool" && error.name === "DataCloneError") error = { kind: "unclonable", message: `a tool's input schema is not plain data (${error.message})` };
  post({ t: "failed", error });
}
