import type { Denied } from "./decision.js";
import type { Node } from "./node.js";
import type { CheckedRequest } from "./request.js";

/*
 * A link's tenants and domains are fixed when the link is made, and a
 * prepared request (see preparedRequest) is frozen, so what a chain's links
 * say of such a request on those two counts never changes: it is worked out
 * once per chain and remembered here, keyed by the chain's own node, so a
 * different capability (a narrower one included) gets its own verdict.
 * Everything that can change (revocation, expiry, uses, budgets, rates,
 * approvals) is still decided on every call.
 */

const byRequest = new WeakMap<CheckedRequest, WeakMap<Node, Denied | null>>();

/** Marks `req`, the checked form of a prepared request, as one whose verdicts are remembered. */
export function rememberVerdicts(req: CheckedRequest): void {
  byRequest.set(req, new WeakMap());
}

/** The verdicts remembered for `req` by chain, or undefined when it is not a prepared request's. */
export function verdictsOf(req: CheckedRequest): WeakMap<Node, Denied | null> | undefined {
  return byRequest.get(req);
}
