/**
 * The mint's policy from configuration data: principals name roles, roles
 * name grants, and a principal's root grant is the union of its roles'
 * grants and its own. Tenants come from the principal: a row scope value
 * `"${tenant}"` stands for each of the principal's tenants in turn.
 */
import type { DbRule, Grant, MintPolicy, Principal } from "../kernel/index.js";
import type { GatewayConfig } from "./config.js";

/** The placeholder a db rule's scope uses for the principal's tenant. */
export const TENANT_PLACEHOLDER = "${tenant}";

function forTenants(rule: DbRule, tenants: readonly string[]): DbRule[] {
  const scope = rule.scope;
  if (scope === undefined || !Object.values(scope).includes(TENANT_PLACEHOLDER)) return [rule];
  // A placeholder with no tenant to stand for grants nothing, rather than a scope matching the literal text.
  return tenants.map((t) => ({ ...rule, scope: Object.fromEntries(Object.entries(scope).map(([k, v]) => [k, v === TENANT_PLACEHOLDER ? t : v])) }));
}

/** The root grant of roles `roles` (those `policy` defines), with `own` added, confined to `tenants` when there are any. */
function grantOf(policy: GatewayConfig["policy"], roles: readonly string[], tenants: readonly string[], own: Grant | undefined): Grant {
  const grants: Grant[] = [...roles.flatMap((r) => (Object.hasOwn(policy.roles, r) ? [policy.roles[r] as Grant] : [])), ...(own === undefined ? [] : [own])];
  const revoke = grants.flatMap((g) => g.revoke ?? []);
  const audit = [...new Set(grants.flatMap((g) => g.audit ?? []))];
  const approval = grants.flatMap((g) => g.approval ?? []);
  return {
    tools: [...new Set(grants.flatMap((g) => g.tools ?? []))],
    fs: grants.flatMap((g) => g.fs ?? []),
    http: grants.flatMap((g) => g.http ?? []),
    exec: grants.flatMap((g) => g.exec ?? []),
    db: grants.flatMap((g) => g.db ?? []).flatMap((rule) => forTenants(rule, tenants)),
    // Only an administrator's roles grant revocations; everyone else's root says nothing of them.
    ...(revoke.length === 0 ? {} : { revoke }),
    // Likewise reading the audit log (the explorer): confined, as everything else, to the principal's tenants.
    ...(audit.length === 0 ? {} : { audit }),
    // An approval rule of any of the principal's roles holds: a role that adds tools cannot take away another's need for approval.
    ...(approval.length === 0 ? {} : { approval }),
    ...(tenants.length === 0 ? {} : { tenants }),
  };
}

/**
 * A mint policy for `policy`: unknown principals get nothing (the mint
 * refuses); known ones get the union of their roles' and own grants, confined
 * to their tenants when they have any.
 */
export function configuredPolicy(policy: GatewayConfig["policy"]): MintPolicy {
  return (principal) => {
    if (!Object.hasOwn(policy.principals, principal.id)) return null;
    const declared = policy.principals[principal.id];
    if (declared === undefined) return null;
    return grantOf(policy, declared.roles, declared.tenants, declared.grant);
  };
}

/**
 * The principal an identity provider's token names, as the gateway mints
 * for it: a principal listed in `policy` has exactly its configured tenants
 * and roles, whatever the token claims; any other has the claimed roles that
 * `policy` defines and the claimed tenants. Null when it has no role (and is
 * not listed): nothing is minted for it.
 */
export function claimedPrincipal(policy: GatewayConfig["policy"], id: string, claimed: { readonly roles: readonly string[]; readonly tenants: readonly string[] }): Required<Principal> | null {
  if (Object.hasOwn(policy.principals, id)) {
    const declared = policy.principals[id];
    if (declared !== undefined) return { id, tenants: declared.tenants, roles: declared.roles };
  }
  const roles = [...new Set(claimed.roles.filter((r) => Object.hasOwn(policy.roles, r)))];
  return roles.length === 0 ? null : { id, tenants: [...new Set(claimed.tenants)], roles };
}

/**
 * The mint policy for principals `claimedPrincipal` gave: the union of their
 * roles' grants, and a listed principal's own grant, confined to their tenants.
 */
export function claimsPolicy(policy: GatewayConfig["policy"]): MintPolicy {
  return (principal) => {
    const own = Object.hasOwn(policy.principals, principal.id) ? policy.principals[principal.id]?.grant : undefined;
    return grantOf(policy, principal.roles, principal.tenants, own);
  };
}
