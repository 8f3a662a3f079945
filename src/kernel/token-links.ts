/**
 * The token layer's way into the kernel: rebuilding a verified token's chain
 * link by link, each link carrying the id its block declares and keeping its
 * revocation and usage in the shared store instead of this process.
 */
import { createRoot, nodeOf, wrap, type Capability } from "./capability.js";
import type { Clock } from "./clock.js";
import { parseConditions, parseGrant } from "./grant.js";
import { conditionsOf, makeNode, NO_LABELS, parseLabels, type LinkIdentity, type MintRecord } from "./node.js";
import type { FullReach } from "./reach.js";

export type { LinkIdentity as TokenLinkIdentity } from "./node.js";

/** What one attenuation block of a token adds to the chain. */
export type TokenLinkContent =
  | { readonly kind: "narrow"; readonly grant: unknown }
  | { readonly kind: "restrict"; readonly conditions: unknown }
  | { readonly kind: "revocable"; readonly labels: unknown };

/** The root of a verified token, whose revocation and usage are those of the shared store. */
export function createTokenRoot(grant: unknown, mint: MintRecord, clock: Clock, identity: LinkIdentity): Capability<FullReach> {
  return createRoot(grant, mint, clock, identity);
}

/** Appends the link of one verified attenuation block, with the block's identity. */
export function appendTokenLink(cap: Capability, content: TokenLinkContent, identity: LinkIdentity): Capability {
  const node = nodeOf(cap);
  if (content.kind === "narrow") {
    const parsed = parseGrant(content.grant);
    return wrap(makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, false, NO_LABELS, identity));
  }
  if (content.kind === "restrict") return wrap(makeNode(node, null, parseConditions(content.conditions), node.mint, node.clock, false, NO_LABELS, identity));
  // A token's revocable link is revoked through the store; its cell is never handed to a caretaker.
  return wrap(makeNode(node, null, Object.freeze({}), node.mint, node.clock, true, parseLabels(content.labels), identity));
}
