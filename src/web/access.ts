/**
 * Who may read what of the audit log: a capability whose grant has the
 * `audit` domain reads every tenant's events, or, when its chain confines it
 * to tenants, only theirs. Everything the explorer answers is filtered by
 * this scope before it leaves the process.
 */
import { authorize, check, type Capability, type Decision } from "../kernel/index.js";

/** Every tenant's events, or only the named tenants'. */
export type ReadScope = { readonly all: true } | { readonly all: false; readonly tenants: readonly string[] };

/** The tenants a chain names anywhere (its links' conditions and grants, its mint record): the only ones a confined reader can be allowed. */
function namedTenants(cap: Capability): string[] {
  const names = new Set<string>(cap.mint.tenants);
  for (const link of cap.lineage) {
    for (const t of link.conditions.tenants ?? []) names.add(t);
    for (const t of link.grant?.tenants ?? []) names.add(t);
  }
  return [...names].sort();
}

/**
 * What `cap` may read of the log now, without charging it; null when it may
 * read nothing (no audit grant, revoked, expired), with the decision that said so.
 */
export function readScope(cap: Capability): { readonly scope: ReadScope } | { readonly scope: null; readonly denied: Decision } {
  const whole = check(cap, { action: "audit.read" });
  if (whole.allowed) return { scope: { all: true } };
  const tenants = namedTenants(cap).filter((tenant) => check(cap, { action: "audit.read", tenant }).allowed);
  return tenants.length === 0 ? { scope: null, denied: whole } : { scope: { all: false, tenants } };
}

/**
 * Charges one read to `cap` for the tenant asked (every tenant when none is):
 * the decision, allowed only within the capability's scope.
 */
export function authorizeRead(cap: Capability, tenant: string | undefined): Decision {
  return authorize(cap, tenant === undefined ? { action: "audit.read" } : { action: "audit.read", tenant });
}
