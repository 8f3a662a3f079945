import type { Clock, Request } from "../kernel/index.js";
import { checkRequest } from "../kernel/internal.js";
import { authorizeToken } from "./biscuit.js";
import { blockJsonOf, compileBlock, decodeBlock } from "./block.js";
import { requestFacts, type CheckKind } from "./compile.js";
import { publicKeyMap, type PublicKeySet } from "./keys.js";

/** Biscuit's own decision on a token, mapped to the link and rule that denied, in the kernel's order of precedence. */
export type TokenDecision = { readonly allowed: true } | { readonly allowed: false; readonly link: number; readonly rule: CheckKind };

/**
 * Decides `request` with Biscuit's authorizer alone, on the token's compiled
 * checks and the request's facts, with `time` from `clock`. Stateful
 * conditions (revocation, uses, budgets) are not part of it: they live in the
 * store. This is what a verifier in another language would decide.
 */
export function biscuitDecision(token: string, options: { readonly publicKeys: PublicKeySet; readonly clock: Clock }, request: Request): TokenDecision {
  const keys = publicKeyMap(options.publicKeys);
  const facts = requestFacts(checkRequest(request), options.clock.now());
  const result = authorizeToken(token, keys, facts);
  if (result.allowed) return result;
  const kinds = result.blocks.map((source, i) => {
    const json = blockJsonOf(source, i);
    return compileBlock(json, decodeBlock(json, i)).checks;
  });
  const failures = result.failed.map((f) => ({ link: f.block, rule: kinds[f.block]?.[f.check] ?? "domains" }));
  // The kernel reports an expired link before any other denial, then the first link that refuses, tenants before domains,
  // and a need for approval only when every link would otherwise allow the request.
  const byLink = (a: { link: number }, b: { link: number }) => a.link - b.link;
  const expired = failures.filter((f) => f.rule === "expiresAt").sort(byLink)[0];
  const refusals = failures.filter((f) => f.rule !== "approval");
  const first = [...refusals].sort((a, b) => a.link - b.link || (a.rule === "tenants" ? -1 : 1) - (b.rule === "tenants" ? -1 : 1))[0];
  const approval = failures.filter((f) => f.rule === "approval").sort(byLink)[0];
  const chosen = expired ?? first ?? approval;
  return chosen === undefined ? { allowed: false, link: 0, rule: "domains" } : { allowed: false, link: chosen.link, rule: chosen.rule };
}
