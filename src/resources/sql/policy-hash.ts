import type { Capability } from "../../kernel/index.js";
import { canonicalJson, sha256Hex } from "../../kernel/internal.js";

/*
 * The version of the policy a database event was decided under: the grants
 * and conditions of every link of the capability's chain, root first, and
 * the resource's own configuration (its schema and limits). Link ids, times
 * of issue and principals are left out, so two capabilities minted by the
 * same policy give the same hash, and any change to a grant, a condition,
 * the schema or a limit gives another. Grants are immutable, so the hash is
 * computed once per capability.
 */

/** A function giving each capability's policy hash under a resource configured with `config` (plain data). */
export function policyHasher(config: unknown): (cap: Capability) => string {
  const resource = sha256Hex(canonicalJson(config));
  const known = new WeakMap<Capability, string>();
  return (cap) => {
    let hash = known.get(cap);
    if (hash === undefined) {
      const chain = cap.lineage.map((link) => ({ grant: link.grant, conditions: link.conditions }));
      hash = sha256Hex(canonicalJson({ resource, chain }));
      known.set(cap, hash);
    }
    return hash;
  };
}
