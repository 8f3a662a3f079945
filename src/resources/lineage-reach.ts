import type { Grant, LinkSummary, Request } from "../kernel/index.js";
import { checkRequest, compileDomains, domainDenial, type CompiledDomains } from "../kernel/internal.js";

/*
 * Whether a capability's links, seen as data (a tool's needs see its caller's
 * lineage, not its authority), reach a request at all. A tool uses it to
 * decide whether it may look at a path while working out its needs: it
 * resolves symbolic links only in what the caller's grants cover, so a need
 * the caller cannot have is declared as written and denied by the dispatcher
 * before anything is looked at. It only gates looking: the kernel still
 * decides every need, with the conditions (tenants, expiry, uses) this
 * leaves to it.
 */

const compiled = new WeakMap<Grant, CompiledDomains>();

function domainsOf(grant: Grant): CompiledDomains {
  let domains = compiled.get(grant);
  if (domains === undefined) {
    domains = compileDomains(grant);
    compiled.set(grant, domains);
  }
  return domains;
}

/** True when the grant of every link of `lineage` allows `request`; a link without a grant only adds conditions. */
export function lineageReaches(lineage: readonly LinkSummary[], request: Request): boolean {
  const checked = checkRequest(request);
  return lineage.every((link) => link.grant === null || domainDenial(domainsOf(link.grant), checked) === null);
}
