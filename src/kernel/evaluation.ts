/**
 * Deciding a request against a chain, and charging it: a request is allowed
 * only if every link allows it, so appending a link can never widen.
 */
import type { Decision, Denied, ShadowDenial } from "./decision.js";
import { InvalidInput, type DenialCode } from "./errors.js";
import type { ExternalLink, LedgerCharge } from "./ledger.js";
import { CHAIN_APPROVALS, CHAIN_BOUND_WRITES, CHAIN_LIMITED, CHAIN_RATED, CHAIN_SHADOW, type Node } from "./node.js";
import type { CheckedRequest } from "./request.js";
import { argumentsHash } from "./arguments-hash.js";
import { verdictsOf } from "./fixed-verdicts.js";
import type { RateLog } from "./rate-window.js";
import { approvalMatches, domainDenial, isApproverOf, NO_ARGS, rateCounts, requestKey, tenantDenial, type CompiledApprovalRule, type CompiledRate } from "./rules.js";

/** What a decision may know of the call besides its request. */
export interface CheckOptions {
  /**
   * The call's arguments (plain data): approval rules with argument patterns
   * match them, and an approval bound to arguments holds only for the same
   * ones. Without them, every argument pattern counts as matched and no
   * approval bound to arguments applies.
   */
  readonly args?: unknown;
}

/** Options for a request that is about to be acted on. */
export interface UseOptions extends CheckOptions {
  /** Cost units charged to every budget up the chain (default 0). */
  readonly cost?: number;
}

/** The arguments of `options`, or NO_ARGS. */
export function argsOf(options: CheckOptions | undefined): unknown {
  return options !== undefined && Object.hasOwn(options, "args") ? options.args : NO_ARGS;
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

/** What a refusal for a token store that cannot be read tells the capability's user: never that anything was revoked. */
export const STORE_UNAVAILABLE_BECAUSE = "could not be checked for revocation: the token store cannot be read now, so nothing was done; retry shortly";

/** The refusal when `store` cannot say what is revoked now (fail closed, but not as a revocation), or null. */
function unavailableDenial(node: Node, at: Node, store: { unavailable?(): string | null }): Denied | null {
  const why = store.unavailable?.() ?? null;
  return why === null ? null : deny(node, at, "ERR_STORE_UNAVAILABLE", "revocations", STORE_UNAVAILABLE_BECAUSE, `: ${why}`);
}

/** A denial for a revoked or expired link anywhere in the chain, or for a token store that cannot tell, or null. */
export function lifeDenial(node: Node): Denied | null {
  let refreshed: { refresh?(): void } | null = null;
  const guard = (node.chain[0] as Node).guard;
  if (guard !== null) {
    refreshed = guard.list;
    guard.list.refresh?.();
    const root = node.chain[0] as Node;
    const unknown = unavailableDenial(node, root, guard.list);
    if (unknown !== null) return unknown;
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
      const unknown = unavailableDenial(node, n, external.ledger);
      if (unknown !== null) return unknown;
    }
    const revokedReason = external.ledger.revokedReason(external.key, n.id);
    if (revokedReason !== null) return deny(node, n, "ERR_REVOKED", "revoked", "was revoked", `: ${revokedReason}`);
  }
  // The chain's earliest expiry says whether any link has expired; only then is the first such link looked for.
  const earliest = node.chainExpiresAt;
  if (earliest === null) return null;
  const now = node.clock.now();
  if (now < earliest) return null;
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

/** Lazily hashed arguments, so a chain without approvals never hashes them. */
class Args {
  #hash: string | null = null;
  constructor(readonly value: unknown) {}
  get hash(): string | null {
    if (this.value === NO_ARGS) return null;
    this.#hash ??= argumentsHash(this.value);
    return this.#hash;
  }
}

/** Whether a link after `from` holds an approval of `req` (with these arguments) by enough of `rule`'s approvers, none of them the caller. */
function approvedAfter(node: Node, from: number, rule: CompiledApprovalRule, req: CheckedRequest, args: Args): boolean {
  let key: string | null = null;
  for (let i = from + 1; i < node.chain.length; i++) {
    const stamp = (node.chain[i] as Node).stamp;
    if (stamp === null) continue;
    key ??= requestKey(req);
    const bound = stamp.bindings.some((b) => b.request === key && (b.args === null || b.args === args.hash));
    if (!bound) continue;
    const agreeing = new Set<string>();
    for (const a of stamp.approvers) {
      if (a.principal !== node.mint.principal && isApproverOf(rule, a.principal, a.roles)) agreeing.add(a.principal);
    }
    if (agreeing.size >= rule.quorum) return true;
  }
  return false;
}

/** A denial for an approval rule anywhere in the chain that `req` matches and no later link's approval satisfies, or null. */
export function approvalDenial(node: Node, req: CheckedRequest, rawArgs: unknown): Denied | null {
  let args: Args | null = null;
  for (const n of node.chain) {
    if (n.approvals === null) continue;
    for (const rule of n.approvals) {
      args ??= new Args(rawArgs);
      if (!approvalMatches(rule, req, args.value)) continue;
      if (approvedAfter(node, n.index, rule, req, args)) continue;
      // The approvers' names are the application's business, not the caller's: the denial says how many must agree.
      return deny(node, n, "ERR_APPROVAL_REQUIRED", "approval", `requires human approval of this exact call (${rule.quorum} approver${rule.quorum === 1 ? "" : "s"})`);
    }
  }
  return null;
}

/**
 * A denial for a database write made under an approval that bound the
 * writes of its call to their arguments, when this write is not one of
 * them (its canonical request and the hash of its arguments): another
 * model, row scope, filter, value or operation than the approved call's.
 * Other requests are left to the chain's grants, which the call's needs
 * already narrowed to.
 */
function boundWriteDenial(node: Node, req: CheckedRequest, rawArgs: unknown): Denied | null {
  if (req.kind !== "db" || req.op === "read") return null;
  let key: string | null = null;
  let args: Args | null = null;
  for (const n of node.chain) {
    const stamp = n.stamp;
    if (stamp === null || !stamp.bindings.some((b) => b.write === true)) continue;
    key ??= requestKey(req);
    args ??= new Args(rawArgs);
    const hash = args.hash;
    if (stamp.bindings.some((b) => b.write === true && b.request === key && b.args === hash)) continue;
    return deny(node, n, "ERR_CAPABILITY_DENIED", "approval.bound", `was approved for exactly the database writes its call named, with their arguments; this ${req.op} of ${req.model} is not one of them`);
  }
  return null;
}

/** The approval rules of the chain that `req` (made with `args`, or NO_ARGS) matches, by link, whether or not they are satisfied. */
export function matchingApprovalRules(node: Node, req: CheckedRequest, args: unknown): { readonly link: number; readonly rule: CompiledApprovalRule }[] {
  const out: { link: number; rule: CompiledApprovalRule }[] = [];
  for (const n of node.chain) {
    for (const rule of n.approvals ?? []) if (approvalMatches(rule, req, args)) out.push({ link: n.index, rule });
  }
  return out;
}

/**
 * What the first link attached in shadow would deny of an allowed request:
 * its tenants, expiry or domains. A shadow grant narrows, so it can only
 * disagree by denying what the chain allows.
 */
function shadowDenial(node: Node, req: CheckedRequest): ShadowDenial | null {
  for (const n of node.chain) {
    const shadow = n.shadow;
    if (shadow === null) continue;
    // In the kernel's own order: expiry, then tenants, then domains.
    const e = shadow.cond.expiresAt;
    if (e !== null && node.clock.now() >= e) return Object.freeze({ link: n.index, linkId: n.id, rule: "expiresAt", because: `expired at ${new Date(e).toISOString()}` });
    const tenants = tenantDenial(shadow.cond, req);
    if (tenants !== null) return Object.freeze({ link: n.index, linkId: n.id, rule: "tenants", because: tenants });
    const d = domainDenial(shadow.domains, req);
    if (d !== null) return Object.freeze({ link: n.index, linkId: n.id, rule: d.rule, because: d.reason });
  }
  return null;
}

/** The ledger entry of rate `i` of a link kept in a shared store: the rate's own key under the link's. */
function rateEntry(key: string, i: number, rate: CompiledRate): LedgerCharge {
  return { key: `${key}/rates.${i}`, maxCalls: rate.calls, maxCost: rate.cost, perMs: rate.perMs };
}

/** A denial for a windowed rate anywhere in the chain without room for `req` of `cost` now, saying when it would fit; or null. */
export function rateDenial(node: Node, req: CheckedRequest, cost: number): Denied | null {
  let now: number | null = null;
  for (const n of node.chain) {
    const rates = n.cond.rates;
    if (rates === null) continue;
    for (let i = 0; i < rates.length; i++) {
      const rate = rates[i] as CompiledRate;
      if (!rateCounts(rate, req)) continue;
      now ??= node.clock.now();
      // A link whose state lives in a shared store counts its window there, for every process at once.
      const refusal = n.external === null ? (n.rateLogs as readonly RateLog[])[i]?.refusal(rate, now, cost) : n.external.ledger.rateRefusal(rateEntry(n.external.key, i, rate), now, cost);
      if (refusal === null || refusal === undefined) continue;
      const when = refusal.retryAt === null ? "; it never will" : `; retry after ${new Date(refusal.retryAt).toISOString()} (in ${Math.max(1, Math.ceil((refusal.retryAt - now) / 1000))} s)`;
      const denied = deny(node, n, "ERR_BUDGET_EXHAUSTED", `rates.${i}`, `${refusal.because}${when}`);
      return refusal.retryAt === null ? denied : Object.freeze({ ...denied, retryAt: refusal.retryAt });
    }
  }
  return null;
}

/** The first link whose tenants or domains refuse `req`, or null: for a prepared request, worked out once per chain (see ./fixed-verdicts.ts). */
function fixedDenial(node: Node, req: CheckedRequest): Denied | null {
  const known = verdictsOf(req);
  const remembered = known?.get(node);
  if (remembered !== undefined) return remembered;
  const denial = linkDenial(node, req);
  known?.set(node, denial);
  return denial;
}

function linkDenial(node: Node, req: CheckedRequest): Denied | null {
  for (const n of node.chain) {
    const t = tenantDenial(n.cond, req);
    if (t !== null) return deny(node, n, "ERR_CAPABILITY_DENIED", "tenants", t);
    if (n.domains !== null) {
      const d = domainDenial(n.domains, req);
      if (d !== null) return deny(node, n, "ERR_CAPABILITY_DENIED", d.rule, d.reason);
    }
  }
  return null;
}

/**
 * Walks the whole chain; charges nothing. Conditions first, so a dead
 * capability says so before anything else; approval last, so a request
 * that waits for approval is one every link would otherwise allow now.
 */
export function evaluate(node: Node, req: CheckedRequest, cost: number, args: unknown = NO_ARGS): Decision {
  const dead = lifeDenial(node);
  if (dead !== null) return dead;
  const fixed = fixedDenial(node, req);
  if (fixed !== null) return fixed;
  // Each of these walks the chain; the chain's traits say which could deny at all.
  const traits = node.traits;
  const denied =
    ((traits & CHAIN_LIMITED) !== 0 ? limitDenial(node, cost) : null) ??
    ((traits & CHAIN_RATED) !== 0 ? rateDenial(node, req, cost) : null) ??
    ((traits & CHAIN_APPROVALS) !== 0 ? approvalDenial(node, req, args) : null) ??
    ((traits & CHAIN_BOUND_WRITES) !== 0 ? boundWriteDenial(node, req, args) : null);
  if (denied !== null) return denied;
  const shadow = (traits & CHAIN_SHADOW) !== 0 ? shadowDenial(node, req) : null;
  return shadow === null ? { allowed: true, capabilityId: node.id } : Object.freeze({ allowed: true, capabilityId: node.id, shadow });
}

/**
 * Charges one use and `cost` to every link of the chain: the shared ledgers
 * first (all or none per ledger: uses, budgets and the windows of the rates
 * that count `req`), then the in-process counters and windows. False, with
 * nothing charged in process, when a ledger had no room left.
 */
export function charge(node: Node, cost: number, req: CheckedRequest): boolean {
  // Only limited and rated links are kept in shared ledgers' accounts, and only a chain with rates has windows to add to.
  const rated = (node.traits & CHAIN_RATED) !== 0;
  if ((node.traits & CHAIN_LIMITED) !== 0 || rated) {
    const now = rated ? node.clock.now() : 0;
    if (!chargeExternal(node.chain, cost, req, rated, now)) return false;
    if (!rated) return chargeInProcess(node.chain, cost);
    for (const n of node.chain) {
      const rates = n.cond.rates;
      if (rates === null || n.external !== null) continue;
      rates.forEach((rate, i) => {
        if (rateCounts(rate, req)) (n.rateLogs as readonly RateLog[])[i]?.add(rate, now, cost);
      });
    }
  }
  return chargeInProcess(node.chain, cost);
}

/** Counts one use and `cost` on every link whose usage this process keeps. */
function chargeInProcess(chain: readonly Node[], cost: number): true {
  for (const n of chain) {
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

/** Charges the limited and rated links kept in shared ledgers, all or none per ledger; true when charged. */
function chargeExternal(chain: readonly Node[], cost: number, req: CheckedRequest, rated: boolean, now: number): boolean {
  const byLedger = new Map<ExternalLink["ledger"], LedgerCharge[]>();
  const add = (ledger: ExternalLink["ledger"], entry: LedgerCharge) => {
    const entries = byLedger.get(ledger);
    if (entries === undefined) byLedger.set(ledger, [entry]);
    else entries.push(entry);
  };
  for (const n of chain) {
    if (n.external === null) continue;
    const { maxUses, budgetCalls, budgetCost, rates } = n.cond;
    if (maxUses !== null || budgetCalls !== null || budgetCost !== null) {
      const maxCalls = maxUses === null ? budgetCalls : budgetCalls === null ? maxUses : Math.min(maxUses, budgetCalls);
      add(n.external.ledger, { key: n.external.key, maxCalls, maxCost: budgetCost });
    }
    if (!rated || rates === null) continue;
    for (let i = 0; i < rates.length; i++) {
      const rate = rates[i] as CompiledRate;
      if (rateCounts(rate, req)) add(n.external.ledger, rateEntry(n.external.key, i, rate));
    }
  }
  for (const [ledger, entries] of byLedger) {
    if (!ledger.charge(entries, cost, now)) return false;
  }
  return true;
}
