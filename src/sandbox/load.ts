import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { InvalidInput, isCapability, narrow, NotACapability, type Capability, type Request } from "../kernel/index.js";
import { defined, describeIssues, resolveOptional, snapshotPlainData } from "../kernel/internal.js";
import type { AnyTool, ToolContext } from "../tools/index.js";
import { defineModuleTool } from "../tools/internal.js";
import { compileAllowedModule, compileToolModule, type ToolModuleSource } from "./compile.js";
import { moduleToolDefinition, type Endowments, type ModuleToolDefinition } from "./format.js";
import { ModuleSandbox, type RemoteMethod, type RemoteObject, type SandboxHealth, type SandboxLimits } from "./module-sandbox.js";
import type { EndowmentShape, ToolInfo } from "./protocol.js";

/** The health of a module that runs in no sandbox. */
export const NO_SANDBOX: SandboxHealth = Object.freeze({ starts: 0, timeouts: 0, stopped: Object.freeze({ timeout: 0, memory: 0, crash: 0 }), rerun: 0, refused: 0 });

/** Limits when the application sets none. */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = Object.freeze({ timeoutMs: 5_000, loadTimeoutMs: 20_000, memoryMb: 128 });

/** Options of `loadToolModule`. */
export interface LoadToolModuleOptions {
  /**
   * What the module's tools may use besides their capability, by name, seen
   * as `context.endowments`: plain data (copied in), or objects such as
   * agentcap's resources whose methods take a capability first (called on
   * this side with the real capability; their plain-data properties are
   * copied in). Nothing else is reachable from the module.
   */
  readonly endowments?: Readonly<Record<string, unknown>>;
  /** Packages the module may import besides zod (always allowed: input schemas are zod). They run inside the sandbox too. */
  readonly allow?: readonly string[];
  /** Time and memory limits of the sandbox (defaults: DEFAULT_SANDBOX_LIMITS). */
  readonly limits?: Partial<SandboxLimits>;
  /**
   * The opt-out: run the module in this process as an ordinary import, with
   * the process's whole authority. Every audit event of its tools records
   * `toolCode: "trusted"`. Needs a path; `allow` and `limits` do not apply.
   */
  readonly trusted?: boolean;
  /** One line for the operator each time the sandbox is stopped (why, and what became of the calls in it), and when it starts refusing calls for having been stopped too often. */
  readonly log?: (line: string) => void;
}

/** A loaded tool module. */
export interface ToolModule {
  /** Its tools, for `createDispatcher`. */
  readonly tools: readonly AnyTool[];
  /** Stops its sandbox; calls in it, and later ones, fail with SandboxStopped. Does nothing for a trusted module. */
  close(): Promise<void>;
  /** What happened to its sandbox so far: starts, calls timed out, sandboxes stopped and why, calls run again, calls refused. All zero for a trusted module. */
  health(): SandboxHealth;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]{0,63}$/;
const MAX_SCHEMA_CHARS = 100_000;
const limit = (max: number) => z.number().int().positive().max(max);

const optionsSchema = z.strictObject({
  endowments: z.record(z.string().regex(IDENTIFIER, "must be an identifier"), z.unknown()).optional(),
  allow: z.array(z.string().min(1).max(214)).max(64).optional(),
  limits: z.strictObject({ timeoutMs: limit(3_600_000), loadTimeoutMs: limit(3_600_000), memoryMb: limit(16_384).min(16) }).partial().optional(),
  trusted: z.boolean().optional(),
  log: z.custom<(line: string) => void>((v) => typeof v === "function", "must be a function").optional(),
});

/**
 * Loads a tool module (a path, or `{ source }`) and returns its tools.
 * Sandboxed by default: the module runs in a worker thread locked down with
 * SES, in a Compartment whose only authority is each call's capability and
 * the endowments; it may import only its own files, zod and `allow`. Throws
 * SandboxViolation when the module reaches for more while loading, InvalidInput
 * for a module that does not compile or defines invalid tools, SandboxTimeout
 * when loading runs past `loadTimeoutMs`.
 */
export async function loadToolModule(from: string | ToolModuleSource, options: LoadToolModuleOptions = {}): Promise<ToolModule> {
  const parsed = optionsSchema.safeParse(snapshotOptions(options));
  if (!parsed.success) throw new InvalidInput(describeIssues("options of loadToolModule", parsed.error));
  const source: ToolModuleSource = typeof from === "string" ? { path: from } : from;
  const endowments = options.endowments ?? {};
  if (options.trusted === true) {
    if (!("path" in source)) throw new InvalidInput("trusted: true loads a module by path: it runs in this process as an ordinary import");
    if (options.allow !== undefined || options.limits !== undefined) throw new InvalidInput("allow and limits apply to sandboxed modules; a trusted module runs unconfined");
    return loadTrusted(source.path, endowments);
  }
  const { sandbox, infos } = await startSandbox(source, endowments, options.allow ?? [], parsed.data.limits ?? {}, parsed.data.log);
  try {
    return Object.freeze({ tools: Object.freeze(infos.map((info) => sandboxedTool(info, sandbox))), close: () => sandbox.close(), health: () => sandbox.health() });
  } catch (e) {
    await sandbox.close();
    throw e;
  }
}

/**
 * A started sandbox running the module `source` with `endowments`, and the
 * tools it defines (at least one). Within the sandbox layer only: the
 * built-in tools start theirs here too.
 */
export async function startSandbox(
  source: ToolModuleSource,
  endowments: Endowments,
  allowed: readonly string[],
  limits: { readonly [K in keyof SandboxLimits]?: number | undefined },
  log?: (line: string) => void,
): Promise<{ sandbox: ModuleSandbox; infos: readonly ToolInfo[] }> {
  const { shapes, remotes } = splitEndowments(endowments);
  const ses = resolveOptional("ses", "loading a tool module sandboxed");
  const compiled = await compileToolModule(source);
  const allow = [...new Set(["zod", ...allowed])];
  const modules = await Promise.all(allow.map(async (specifier) => ({ specifier, code: await compileAllowedModule(specifier, compiled.dir) })));
  const settings = { ...DEFAULT_SANDBOX_LIMITS, ...defined(limits) };
  const sandbox = new ModuleSandbox({ ses, tool: { code: compiled.code, filename: compiled.filename }, modules, endowments: shapes }, settings, compiled.filename, remotes, log);
  const infos = await sandbox.start();
  if (infos.length === 0) {
    await sandbox.close();
    throw new InvalidInput(`tool module ${compiled.filename} exports no tools made by defineTool`);
  }
  return { sandbox, infos };
}

/** Options are read once, own properties only; endowments are checked on their own, as they hold objects. */
function snapshotOptions(options: unknown): unknown {
  if (typeof options !== "object" || options === null) return options;
  const { endowments, log, ...rest } = options as Record<string, unknown>;
  return { ...(snapshotPlainData(rest, "options of loadToolModule") as object), ...(endowments === undefined ? {} : { endowments }), ...(log === undefined ? {} : { log }) };
}

/** Plain data is copied into the sandbox; an object with methods stays here and is reached through them. */
function splitEndowments(endowments: Endowments): { shapes: Record<string, EndowmentShape>; remotes: Map<string, RemoteObject> } {
  const shapes: Record<string, EndowmentShape> = {};
  const remotes = new Map<string, RemoteObject>();
  for (const [name, value] of Object.entries(endowments)) {
    if (typeof value === "function") {
      throw new InvalidInput(`endowments.${name} is a function; endow an object whose methods take a capability first (such as a resource), or plain data`);
    }
    if (typeof value === "object" && value !== null && !isPlainObject(value)) {
      throw new InvalidInput(`endowments.${name} is a class instance; endow plain data, or an object whose own methods take a capability first`);
    }
    const methods = typeof value === "object" && value !== null ? Object.entries(value).filter((e): e is [string, RemoteMethod] => typeof e[1] === "function") : [];
    if (methods.length === 0) {
      shapes[name] = { kind: "data", value: plainData(value, `endowments.${name}`) };
      continue;
    }
    const data = Object.fromEntries(Object.entries(value as object).filter(([, v]) => typeof v !== "function"));
    shapes[name] = { kind: "remote", data: plainData(data, `endowments.${name}`) as Record<string, unknown>, methods: methods.map(([m]) => m) };
    remotes.set(name, { target: value as object, methods: new Map(methods) });
  }
  return { shapes, remotes };
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === Array.prototype || proto === null;
}

/** A copy of endowed data; objects inside must be plain too (a Date or a Map would arrive empty). */
function plainData(value: unknown, where: string): unknown {
  const copy = snapshotPlainData(value, where);
  const visit = (v: unknown, at: string): void => {
    if (typeof v !== "object" || v === null) return;
    if (!isPlainObject(v)) throw new InvalidInput(`${at} is a class instance, not plain data`);
    for (const [k, inner] of Object.entries(v)) visit(inner, `${at}.${k}`);
  };
  // The snapshot has already bounded depth and size, and refused functions.
  visit(value, where);
  return copy;
}

function sandboxedTool(info: ToolInfo, sandbox: ModuleSandbox): AnyTool {
  return defineModuleTool(
    {
      name: info.name,
      description: info.description,
      input: hostSchema(info),
      needs: async (input, context) => (await sandbox.needs(info.name, input, context.tenant)) as readonly Request[],
    },
    (input, capability, context) => sandbox.run(info.name, input, capability, context),
    "sandboxed",
    (input) => {
      sandbox.release(input);
    },
  );
}

/**
 * The input schema on this side, rebuilt from the JSON schema the sandbox
 * computed: the dispatcher validates with it and shows it to models; the
 * tool's own zod schema (refinements, transforms) runs again in the sandbox.
 */
function hostSchema(info: ToolInfo): z.ZodObject {
  // The schema comes from tool code: bounded (depth, values, size) before anything here works on it.
  const json = snapshotPlainData(info.inputSchema, `input schema of tool ${info.name}`);
  if (JSON.stringify(json).length > MAX_SCHEMA_CHARS) throw new InvalidInput(`tool ${info.name}: its input schema is larger than ${MAX_SCHEMA_CHARS} characters of JSON`);
  let schema: z.ZodType;
  try {
    schema = z.fromJSONSchema(info.inputSchema);
  } catch (e) {
    throw new InvalidInput(`tool ${info.name}: its input schema cannot be rebuilt from JSON schema (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!(schema instanceof z.ZodObject)) throw new InvalidInput(`tool ${info.name}: input must be a zod object schema (z.object({...}))`);
  // A zod object drops unknown keys unless it says otherwise, and so does the sandbox's; JSON schema's default would let them through.
  return Object.hasOwn(info.inputSchema, "additionalProperties") ? schema : schema.strip();
}

/** A trusted handler's capability argument, which must be a kernel capability. */
function held(value: unknown, what: string): Capability {
  if (!isCapability(value)) throw new NotACapability(`${what} needs a capability the handler holds`);
  return value;
}

async function loadTrusted(file: string, endowments: Endowments): Promise<ToolModule> {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    throw new InvalidInput(`tool module ${file} cannot be read`);
  }
  const namespace = (await import(pathToFileURL(real).href)) as Record<string, unknown>;
  const found = new Set<ModuleToolDefinition>();
  for (const value of Object.values(namespace)) {
    const definition = moduleToolDefinition(value);
    if (definition !== undefined) found.add(definition);
  }
  if (found.size === 0) throw new InvalidInput(`tool module ${file} exports no tools made by defineTool of agentcap/sandbox`);
  const tools = [...found].map(({ spec, handler }) =>
    defineModuleTool(
      {
        name: spec.name,
        description: spec.description,
        input: spec.input,
        needs: (input, context) => spec.needs(input, { tenant: context.tenant, endowments }),
      },
      (input, capability, context: ToolContext) =>
        handler(input, capability, {
          tenant: context.tenant,
          endowments,
          narrow: (cap, grant) => narrow(held(cap, "narrow"), grant),
          call: (tool, subInput, cap, callOptions) => context.call(tool, subInput, held(cap, `call(${tool})`), callOptions),
        }),
      "trusted",
    ),
  );
  return Object.freeze({ tools: Object.freeze(tools), close: () => Promise.resolve(), health: () => NO_SANDBOX });
}
