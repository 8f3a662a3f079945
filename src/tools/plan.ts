import { InvalidInput, type Capability, type Grant, type Request } from "../kernel/index.js";
import { implementationOf, parseToolInput, type AnyTool, type CallOptions, type NeedsContext } from "./define.js";
import { grantForNeeds } from "./needs-grant.js";

/** One call worked out before anything runs: its validated input, its needs, and the grant that allows exactly those needs. */
export interface CallPlan {
  readonly tool: AnyTool;
  readonly input: unknown;
  readonly needs: readonly Request[];
  readonly grant: Grant;
}

/**
 * Validates `input` (InvalidInput naming the field), asks the tool for its
 * needs, stamps the call's tenant on every need that names none, and builds
 * the grant for exactly those needs. Nothing is authorized or charged.
 */
export async function planCall(tool: AnyTool, input: unknown, context: NeedsContext): Promise<CallPlan> {
  const parsed = parseToolInput(tool, input);
  const declared: unknown = await implementationOf(tool).needs(parsed, context);
  if (!Array.isArray(declared)) throw new InvalidInput(`tool ${tool.name}: needs must return an array of requests, got ${typeof declared}`);
  const needs = declared.map((need: unknown) => stampTenant(need, context.tenant)) as Request[];
  return Object.freeze({ tool, input: parsed, needs: Object.freeze(needs), grant: grantForNeeds(tool.name, needs) });
}

function stampTenant(need: unknown, tenant: string | null): unknown {
  if (tenant === null || typeof need !== "object" || need === null || Object.hasOwn(need, "tenant")) return need;
  return { ...need, tenant };
}

/** The context `needs` sees for a call under `capability`; its lineage is only computed if read. */
export function needsContext(capability: Capability, tenant: string | null): NeedsContext {
  return Object.freeze({
    tenant,
    get lineage() {
      return capability.lineage;
    },
  });
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
