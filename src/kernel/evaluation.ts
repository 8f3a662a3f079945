/**
 * Deciding a request against a chain, and charging it: a request is allowed
 * only if every link allows it, so appending a link can never widen.
 */
import type { Decision, Denied } from "./decision.js";
import { InvalidInput, type DenialCode } from "./errors.js";
import type { ExternalLink, LedgerCharge } from "./ledger.js";
import type { Node } from "./node.js";
import type { CheckedRequest } from "./request.js";
import { domainDenial, tenantDenial } from "./rules.js";

/** Options for a request that is about to be acted on. */
export interface UseOptions {
  /** Cost units charged to every budget up the chain (default 0). */
  readonly cost?: number;
}

export function deny(node: Node, at: Node, code: DenialCode, rule: string, because: string, detail = ""): Denied {
  return Object.freeze({
    allowed: false,
    capabilityId: node.id,
    code,
    link: at.index,
    linkId: at.id,
    rule,
    because,
    reason: `${describe(at)} ${because}${detail}`,
  });
}

function describe(n: Node): string {
  return n.parent === null ? `root capability ${n.id} (minted for ${n.mint.principal})` : `link ${n.index} (${n.id})`;
}

/** A denial for a revoked or expired link anywhere in the chain, or null. */
export function lifeDenial(node: Node): Denied | null {
  let refreshed: { refresh?(): void } | null = null;
  const guard = (node.chain[0] as Node).guard;
  if (guard !== null) {
    refreshed = guard.list;
    guard.list.refresh?.();
    const root = node.chain[0] as Node;
    const whole = guard.list.mintRevokedReason(root.mint, guard.keyId);
    if (whole !== null) return deny(node, root, "ERR_REVOKED", "revoked", "was revoked", `: ${whole}`);
  }
  for (const n of node.chain) {
    if (guard !== null) {
      const byList = guard.list.linkRevokedReason(n.id, n.labels);
      if (byList !== null) return deny(node, n, "ERR_REVOKED", "revoked", "was revoked", `: ${byList}`);
    }
    if (n.cell?.revoked) return deny(node, n, "ERR_REVOKED", "revoked", "was revoked", `: ${n.cell.reason}`);
    const external = n.external;
    if (external === null) continue;
    if (external.ledger !== refreshed) {
      refreshed = external.ledger;
      refreshed.refresh?.();
    }
    const revokedReason = external.ledger.revokedReason(external.key, n.id);
    if (revokedReason !== null) return deny(node, n, "ERR_REVOKED", "revoked", "was revoked", `: ${revokedReason}`);
  }
  const now = node.clock.now();
  for (const n of node.chain) {
    const e = n.cond.expiresAt;
    if (e !== null && now >= e) return deny(node, n, "ERR_EXPIRED", "expiresAt", `expired at ${new Date(e).toISOString()}`);
  }
  return null;
}

/** A denial for a use count or budget anywhere in the chain without room for one more request of `cost`, or null. */
export function limitDenial(node: Node, cost: number): Denied | null {
  for (const n of node.chain) {
    const { maxUses, budgetCalls, budgetCost } = n.cond;
    // Only limited links are looked up, so a chain without limits never touches a shared store.
    if (maxUses === null && budgetCalls === null && budgetCost === null) continue;
    const { calls, cost: spent } = n.external === null ? n.usage : n.external.ledger.usage(n.external.key);
    if (maxUses !== null && calls >= maxUses) {
      return deny(node, n, "ERR_BUDGET_EXHAUSTED", "maxUses", maxUses === 1 ? "is single-use and has been used" : `has used all ${maxUses} of its uses`);
    }
    if (budgetCalls !== null && calls >= budgetCalls) {
      return deny(node, n, "ERR_BUDGET_EXHAUSTED", "budget.calls", `has spent all ${budgetCalls} calls of its budget`);
    }
    if (budgetCost !== null && spent + cost > budgetCost) {
      return deny(node, n, "ERR_BUDGET_EXHAUSTED", "budget.cost", `has ${budgetCost - spent} cost units left, and the request costs ${cost}`);
    }
  }
  return null;
}

/** Walks the whole chain; charges nothing. Conditions first, so a dead capability says so before anything else. */
export function evaluate(node: Node, req: CheckedRequest, cost: number): Decision {
  const dead = lifeDenial(node);
  if (dead !== null) return dead;
  for (const n of node.chain) {
    const t = tenantDenial(n.cond, req);
    if (t !== null) return deny(node, n, "ERR_CAPABILITY_DENIED", "tenants", t);
    if (n.domains !== null) {
      const d = domainDenial(n.domains, req);
      if (d !== null) return deny(node, n, "ERR_CAPABILITY_DENIED", d.rule, d.reason);
    }
  }
  return limitDenial(node, cost) ?? { allowed: true, capabilityId: node.id };
}

/**
 * Charges one use and `cost` to every link of the chain: the shared ledgers
 * first (all or none per ledger), then the in-process counters. False, with
 * nothing charged in process, when a ledger had no room left.
 */
export function charge(node: Node, cost: number): boolean {
  if (!chargeExternal(node.chain, cost)) return false;
  for (const n of node.chain) {
    if (n.external !== null) continue;
    n.usage.calls += 1;
    n.usage.cost += cost;
  }
  return true;
}

export function costOf(options: UseOptions | undefined): number {
  const cost = options !== undefined && Object.hasOwn(options, "cost") ? options.cost : 0;
  if (typeof cost !== "number" || !Number.isFinite(cost) || cost < 0) {
    throw new InvalidInput(`cost must be a finite number of units, zero or more; got ${typeof cost === "number" ? String(cost) : typeof cost}`);
  }
  return cost;
}

/** Charges the limited links kept in shared ledgers, all or none per ledger; true when charged. */
function chargeExternal(chain: readonly Node[], cost: number): boolean {
  const byLedger = new Map<ExternalLink["ledger"], LedgerCharge[]>();
  for (const n of chain) {
    if (n.external === null) continue;
    const { maxUses, budgetCalls, budgetCost } = n.cond;
    if (maxUses === null && budgetCalls === null && budgetCost === null) continue;
    const maxCalls = maxUses === null ? budgetCalls : budgetCalls === null ? maxUses : Math.min(maxUses, budgetCalls);
    const entries = byLedger.get(n.external.ledger) ?? [];
    entries.push({ key: n.external.key, maxCalls, maxCost: budgetCost });
    byLedger.set(n.external.ledger, entries);
  }
  for (const [ledger, entries] of byLedger) {
    if (!ledger.charge(entries, cost)) return false;
  }
  return true;
}

