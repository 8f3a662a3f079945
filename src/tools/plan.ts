import { InvalidInput, type Capability, type Grant, type LinkSummary, type Request } from "../kernel/index.js";
import { argumentsOf, implementationOf, parseToolInput, type AnyTool, type CallOptions, type NeedsContext, type ToolImplementation } from "./define.js";
import type { PlainData } from "../kernel/internal.js";
import { grantForNeeds } from "./needs-grant.js";

/** One call worked out before anything runs: its validated input, its needs, and the grant that allows exactly those needs. */
export interface CallPlan {
  readonly tool: AnyTool;
  readonly input: unknown;
  readonly needs: readonly Request[];
  /** For each need, the arguments the tool bound it to (see bindArguments), or undefined. */
  readonly needArgs: readonly (PlainData | undefined)[];
  readonly grant: Grant;
}

/**
 * Validates `input` (InvalidInput naming the field), asks the tool for its
 * needs, stamps the call's tenant on every need that names none, and builds
 * the grant for exactly those needs. Nothing is authorized or charged. The
 * plan comes back as it is when the tool's needs are not asynchronous, so a
 * call that waits for nothing does not wait for a promise either.
 */
export function planCall(tool: AnyTool, input: unknown, context: NeedsContext): CallPlan | Promise<CallPlan> {
  const parsed = parseToolInput(tool, input);
  const impl = implementationOf(tool);
  const declared: unknown = impl.needs(parsed, context);
  if (Array.isArray(declared)) return finishOrRelease(tool, impl, parsed, declared, context.tenant);
  return (async () => finishOrRelease(tool, impl, parsed, await declared, context.tenant))();
}

/** The plan; needs that cannot make one release what they started, as nobody will run the handler with this input. */
function finishOrRelease(tool: AnyTool, impl: ToolImplementation, parsed: unknown, declared: unknown, tenant: string | null): CallPlan {
  try {
    return finishPlan(tool, parsed, declared, tenant);
  } catch (e) {
    impl.release?.(parsed);
    throw e;
  }
}

/** A frozen empty list, shared by every call that needs nothing. */
const NO_NEEDS: readonly Request[] = Object.freeze([]);
const NO_ARGS: readonly (PlainData | undefined)[] = Object.freeze([]);

function finishPlan(tool: AnyTool, parsed: unknown, declared: unknown, tenant: string | null): CallPlan {
  if (!Array.isArray(declared)) throw new InvalidInput(`tool ${tool.name}: needs must return an array of requests, got ${typeof declared}`);
  const needs = declared.length === 0 ? NO_NEEDS : Object.freeze(declared.map((need: unknown) => stampTenant(need, tenant)) as Request[]);
  // Read from the objects the tool returned, before the tenant stamp copies them.
  const needArgs = declared.length === 0 ? NO_ARGS : Object.freeze(declared.map((need: unknown) => argumentsOf(need)));
  return Object.freeze({ tool, input: parsed, needs, needArgs, grant: grantForNeeds(tool.name, needs) });
}

function stampTenant(need: unknown, tenant: string | null): unknown {
  if (tenant === null || typeof need !== "object" || need === null || Object.hasOwn(need, "tenant")) return need;
  return { ...need, tenant };
}

/** The context `needs` sees for a call under `capability`; its lineage is only computed if read. */
export function needsContext(capability: Capability, tenant: string | null): NeedsContext {
  return new CallNeedsContext(tenant, capability);
}

/** A class rather than an object literal with a getter, which V8 gives a map of its own per call, kept until a full collection. */
class CallNeedsContext implements NeedsContext {
  readonly #capability: Capability;

  constructor(
    readonly tenant: string | null,
    capability: Capability,
  ) {
    this.#capability = capability;
    Object.freeze(this);
  }

  get lineage(): readonly LinkSummary[] {
    return this.#capability.lineage;
  }
}

/**
 * The tenant a call acts for: the one given, else the capability's only
 * minted tenant, else none. Throws InvalidInput for a malformed tenant.
 */
export function tenantFor(capability: Capability, options: CallOptions | undefined): string | null {
  const given: unknown = options !== undefined && Object.hasOwn(options, "tenant") ? options.tenant : undefined;
  if (given !== undefined) {
    if (typeof given !== "string" || given.length === 0 || given.length > 256) {
      throw new InvalidInput(`tenant must be a non-empty string of at most 256 characters, got ${JSON.stringify(given)}`);
    }
    return given;
  }
  const minted = capability.mint.tenants;
  return minted.length === 1 ? (minted[0] ?? null) : null;
}
