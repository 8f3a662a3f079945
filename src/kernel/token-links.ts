/**
 * The token layer's way into the kernel: rebuilding a verified token's chain
 * link by link, each link carrying the id its block declares and keeping its
 * revocation and usage in the shared store instead of this process.
 */
import { createRoot, nodeOf, wrap, type Capability } from "./capability.js";
import type { Clock } from "./clock.js";
import { parseConditions, parseGrant } from "./grant.js";
import { bindPrincipal } from "./principal-refs.js";
import { InvalidInput } from "./errors.js";
import type { ExternalLink, RootGuard } from "./ledger.js";
import { conditionsOf, makeNode, NO_LABELS, parseLabels, type LinkIdentity, type MintRecord, type Node } from "./node.js";
import type { FullReach } from "./reach.js";

export type { LinkIdentity as TokenLinkIdentity } from "./node.js";

/** What one attenuation block of a token adds to the chain. */
export type TokenLinkContent =
  | { readonly kind: "narrow"; readonly grant: unknown }
  | { readonly kind: "restrict"; readonly conditions: unknown }
  | { readonly kind: "revocable"; readonly labels: unknown };

/** The root of a verified token, whose revocation and usage are those of the shared store, bound to the store's revocation list. */
export function createTokenRoot(grant: unknown, mint: MintRecord, clock: Clock, identity: LinkIdentity, guard: RootGuard): Capability<FullReach> {
  return createRoot(grant, mint, clock, { identity, guard });
}

/** The revocation list `cap`'s root is bound to, with its key id, or null. */
export function guardOf(cap: Capability): RootGuard | null {
  return (nodeOf(cap).chain[0] as Node).guard;
}

/**
 * Moves the uses, budget and rate windows of link `index` of `cap`'s chain to
 * `link` (the token store, under the revocation id of the block that now
 * carries it), so that the link and every token made from it spend one
 * account. Returns null when moved (or already kept there), else why not: a
 * link already used in this process cannot move, since the store would not
 * know what it spent.
 */
export function moveToLedger(cap: Capability, index: number, link: ExternalLink): string | null {
  const node = nodeOf(cap).chain[index];
  if (node === undefined) throw new InvalidInput(`capability has no link ${index}`);
  if (node.external !== null) return null;
  const limited = node.cond.maxUses !== null || node.cond.budgetCalls !== null || node.cond.budgetCost !== null;
  if (limited && (node.usage.calls > 0 || node.usage.cost > 0)) {
    return `link ${index} (${node.id}) has a use count or budget and was already used in this process, so its remaining uses cannot move into the token store; serialize a fresh limited link before using it`;
  }
  if (node.rateLogs?.some((log) => !log.empty) === true) {
    return `link ${index} (${node.id}) has windowed rates that already counted requests in this process, so its windows cannot move into the token store; serialize a fresh rated link before using it`;
  }
  node.external = link;
  return null;
}

/** Appends the link of one verified attenuation block, with the block's identity. */
export function appendTokenLink(cap: Capability, content: TokenLinkContent, identity: LinkIdentity): Capability {
  const node = nodeOf(cap);
  if (content.kind === "narrow") {
    const parsed = bindPrincipal(parseGrant(content.grant), node.mint);
    return wrap(makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, false, NO_LABELS, { identity }));
  }
  if (content.kind === "restrict") return wrap(makeNode(node, null, parseConditions(content.conditions), node.mint, node.clock, false, NO_LABELS, { identity }));
  // A token's revocable link is revoked through the store; its cell is never handed to a caretaker.
  return wrap(makeNode(node, null, Object.freeze({}), node.mint, node.clock, true, parseLabels(content.labels), { identity }));
}

/** The capability of link `index` of `cap`'s chain (an ancestor, or `cap` itself). */
export function ancestorAt(cap: Capability, index: number): Capability {
  const node = nodeOf(cap).chain[index];
  if (node === undefined) throw new InvalidInput(`capability has no link ${index}`);
  return wrap(node);
}

/**
 * Calls `watcher` once when the caretaker revokes link `index` of `cap`'s
 * chain (at once, if it already has). False when the link is not an
 * in-process revocable link (it has no caretaker's switch).
 */
export function watchLinkRevocation(cap: Capability, index: number, watcher: (reason: string) => void): boolean {
  const node = nodeOf(cap).chain[index];
  if (node?.cell === null || node === undefined || node.external !== null) return false;
  if (node.cell.revoked) watcher(node.cell.reason);
  else node.cell.watch(watcher);
  return true;
}
