import { z } from "zod";
import { InvalidInput, type Grant, type Request } from "../kernel/index.js";

/*
 * The tool module format: an ES module (JavaScript or TypeScript) that
 * imports `defineTool` from "agentcap/sandbox" and exports the tools it
 * defines. Inside a sandbox, that import is the sandbox's own defineTool and
 * the module's only agentcap import; loaded with `trusted: true`, it is this
 * file. Either way a handler is written the same: authority comes from its
 * capability, resources from `context.endowments`, each method taking the
 * capability first.
 */

/**
 * The capability a module tool's handler gets. In a sandbox it is an opaque
 * reference, to be narrowed with `context.narrow` and handed to endowed
 * methods or sub-tools, and nothing else; loaded trusted, it is the
 * capability itself.
 */
export type ModuleCapability = object;

/** What a module tool's `needs` sees besides its input. */
export interface ModuleNeedsContext<E = Endowments> {
  /** The tenant the call acts for. */
  readonly tenant: string | null;
  /** What the application endowed the module with. */
  readonly endowments: E;
}

/** What a module tool's handler sees besides its input and capability. */
export interface ModuleToolContext<E = Endowments> extends ModuleNeedsContext<E> {
  /** A capability allowing only what both `capability` and `grant` allow (the kernel's `narrow`; in a sandbox, checked when first used). */
  readonly narrow: (capability: ModuleCapability, grant: Grant) => ModuleCapability;
  /** Calls another tool of the application's dispatcher, by name, with a capability the handler holds. */
  readonly call: (tool: string, input: unknown, capability: ModuleCapability, options?: { readonly tenant?: string }) => Promise<unknown>;
}

/** Endowments as a module sees them: plain data, and objects whose methods take a capability first and return promises. */
export type Endowments = Readonly<Record<string, unknown>>;

/** How a module tool is declared; as `defineTool` of agentcap/tools, with needs and handler seeing the module context. */
export interface ModuleToolSpec<S extends z.ZodObject, E = Endowments> {
  readonly name: string;
  readonly description: string;
  readonly input: S;
  readonly needs: (input: z.output<S>, context: ModuleNeedsContext<E>) => readonly Request[] | Promise<readonly Request[]>;
}

/** A module tool's implementation. */
export type ModuleToolHandler<In, Out, E = Endowments> = (input: In, capability: ModuleCapability, context: ModuleToolContext<E>) => Out | Promise<Out>;

/** A tool as a module exports it: a description the loader turns into a tool of the dispatcher. */
export interface ModuleTool {
  readonly name: string;
  readonly description: string;
}

/** The parts of a module tool only the loader uses. */
export interface ModuleToolDefinition {
  readonly spec: ModuleToolSpec<z.ZodObject>;
  readonly handler: ModuleToolHandler<unknown, unknown>;
}

const definitions = new WeakMap<ModuleTool, ModuleToolDefinition>();

/** Defines a tool of a tool module; `loadToolModule` turns it into a tool of the dispatcher. */
export function defineTool<S extends z.ZodObject, Out, E = Endowments>(spec: ModuleToolSpec<S, E>, handler: ModuleToolHandler<z.output<S>, Out, E>): ModuleTool {
  if (typeof spec !== "object" || (spec as unknown) === null) throw new InvalidInput("defineTool expects a spec object: { name, description, input, needs }");
  const own = <K extends keyof ModuleToolSpec<S, E>>(k: K): ModuleToolSpec<S, E>[K] | undefined => (Object.hasOwn(spec, k) ? spec[k] : undefined);
  const name = own("name");
  if (typeof name !== "string") throw new InvalidInput("defineTool: name must be a string");
  if (!(own("input") instanceof z.ZodObject)) throw new InvalidInput(`defineTool ${name}: input must be a zod object schema (z.object({...}))`);
  if (typeof own("needs") !== "function" || typeof handler !== "function") throw new InvalidInput(`defineTool ${name}: needs and handler must be functions`);
  const tool: ModuleTool = Object.freeze({ name, description: String(own("description")) });
  definitions.set(tool, Object.freeze({ spec: spec as unknown as ModuleToolSpec<z.ZodObject>, handler: handler as unknown as ModuleToolHandler<unknown, unknown> }));
  return tool;
}

/** Loader only: the definition behind a module tool, or undefined for any other value. */
export function moduleToolDefinition(value: unknown): ModuleToolDefinition | undefined {
  return typeof value === "object" && value !== null ? definitions.get(value as ModuleTool) : undefined;
}
