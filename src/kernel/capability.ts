import { randomUUID } from "node:crypto";
import type { Clock } from "./clock.ts";
import { canonicalJson, sha256Hex } from "./content-hash.ts";
import { denialError, type Decision, type Denied } from "./decision.ts";
import { InvalidInput, NotACapability, type DenialCode } from "./errors.ts";
import { parseConditions, parseGrant, type Grant, type LinkConditions } from "./grant.ts";
import type { ExternalLink, LedgerCharge } from "./ledger.ts";
import type { FullReach, Meet, ReachOf, ReachVariance } from "./reach.ts";
import { checkRequest, type CheckedRequest, type Request } from "./request.ts";
import { snapshotPlainData } from "./plain-data.ts";
import { RevocationCell, signalForLinks } from "./revocation.ts";
import {
  compileConditions,
  compileDomains,
  domainDenial,
  tenantDenial,
  type CompiledConditions,
  type CompiledDomains,
} from "./rules.ts";

/** Who the root capability was minted for, and by whom: carried unchanged by every descendant. */
export interface MintRecord {
  readonly principal: string;
  readonly tenants: readonly string[];
  readonly roles: readonly string[];
  readonly requestId: string;
  readonly issuedAt: number;
  readonly issuer: string;
}

/** One link of a lineage, safe to log: ids, hashes and data, never a capability. */
export interface LinkSummary {
  readonly id: string;
  readonly hash: string;
  /** The link's own grant, or null for a link that only adds conditions or revocability. */
  readonly grant: Grant | null;
  readonly conditions: LinkConditions;
  readonly revocable: boolean;
  /** Names the caretaker gave the link, such as `{ session, task }`; they grant nothing. */
  readonly labels: Readonly<Record<string, string>>;
}

/** Options for a request that is about to be acted on. */
export interface UseOptions {
  /** Cost units charged to every budget up the chain (default 0). */
  readonly cost?: number;
}

interface Node {
  readonly id: string;
  readonly index: number;
  readonly parent: Node | null;
  /** Root first, this node last. */
  readonly chain: readonly Node[];
  readonly grant: Grant | null;
  readonly conditions: LinkConditions;
  readonly domains: CompiledDomains | null;
  readonly cond: CompiledConditions;
  readonly mint: MintRecord;
  readonly clock: Clock;
  readonly cell: RevocationCell | null;
  readonly labels: Readonly<Record<string, string>>;
  /** Allowed requests made through this link or any descendant, and the cost they were charged. */
  readonly usage: { calls: number; cost: number };
  /** Set for a link that came from a verified token: its revocation and usage live in a shared store instead. */
  readonly external: ExternalLink | null;
  hash: string | null;
  summary: LinkSummary | null;
}

const CONSTRUCT = Symbol("agentcap.construct");

let nodeOf: (value: unknown) => Node;

declare const reach: unique symbol;

/**
 * An unforgeable, immutable capability. Only the kernel constructs one; it is
 * frozen, its state lives in a private field, and every kernel entry point
 * refuses anything that did not come out of the kernel. `R` is its reach at
 * the type level: what it can possibly allow, refined by every narrowing.
 * Plain `Capability` (reach `unknown`) accepts any capability and promises
 * no reach; a root from a Mint is `Capability<FullReach>`.
 */
export class Capability<R = unknown> {
  declare readonly [reach]: ReachVariance<R>;
  readonly #node: Node;

  /** Not for use: capabilities come from a Mint, `narrow`, `restrict` or `revocable`. */
  constructor(token: symbol, node: Node) {
    if (token !== CONSTRUCT) throw new NotACapability("capabilities are created by a Mint, never constructed directly");
    this.#node = node;
    Object.freeze(this);
  }

  static {
    // The only way to reach a capability's state, and it never leaves this module.
    nodeOf = (value: unknown): Node => {
      if (typeof value !== "object" || value === null || !(#node in value)) {
        throw new NotACapability(
          "expected a capability issued by this kernel; copies, proxies, subclasses and look-alike objects carry no authority",
        );
      }
      return value.#node;
    };
  }

  /** Random identifier of this link. */
  get id(): string {
    return nodeOf(this).id;
  }

  /** SHA-256 over the canonical encoding of the chain up to and including this link. */
  get hash(): string {
    return hashOf(nodeOf(this));
  }

  /** Identifier of the capability this one was derived from, or null for a root. */
  get parentId(): string | null {
    return nodeOf(this).parent?.id ?? null;
  }

  /** Number of links above this one (0 for a root). */
  get depth(): number {
    return nodeOf(this).index;
  }

  /** This link's own grant; null when the link only adds conditions or revocability. */
  get grant(): Grant | null {
    return nodeOf(this).grant;
  }

  /** This link's own conditions. */
  get conditions(): LinkConditions {
    return nodeOf(this).conditions;
  }

  /** The root's mint record. */
  get mint(): MintRecord {
    return nodeOf(this).mint;
  }

  /** The chain from the root to this link, as loggable data. */
  get lineage(): readonly LinkSummary[] {
    return Object.freeze(nodeOf(this).chain.map(summaryOf));
  }

  /** Appends a link that allows only what `grant` allows; the result never allows more than this capability. */
  narrow<const G extends Grant>(grant: G): Capability<Meet<R, ReachOf<G>>> {
    return narrow(this, grant);
  }

  /** Appends a link that adds conditions (expiry, uses, budget, tenants) and narrows no domain. */
  restrict(conditions: LinkConditions): Capability<R> {
    return restrict(this, conditions);
  }

  /** Whether the request would be allowed now, without using anything. */
  check(request: Request): Decision {
    return check(this, request);
  }

  /** Decides the request and, when allowed, charges uses and budgets up the chain. */
  authorize(request: Request, options?: UseOptions): Decision {
    return authorize(this, request, options);
  }

  toJSON(): never {
    throw new NotACapability("a capability cannot be serialized to JSON; use a token to pass authority to another process");
  }
}

Object.freeze(Capability.prototype);
Object.freeze(Capability);

function hashOf(node: Node): string {
  if (node.hash === null) {
    node.hash = sha256Hex(
      canonicalJson({
        v: 1,
        parent: node.parent === null ? null : hashOf(node.parent),
        mint: node.parent === null ? node.mint : null,
        grant: node.grant,
        conditions: node.conditions,
        revocable: node.cell !== null,
        labels: node.labels,
      }),
    );
  }
  return node.hash;
}

/** Made once per link, so every audit event of a link shares one summary object. */
function summaryOf(node: Node): LinkSummary {
  return (node.summary ??= Object.freeze({
    id: node.id,
    hash: hashOf(node),
    grant: node.grant,
    conditions: node.conditions,
    revocable: node.cell !== null,
    labels: node.labels,
  }));
}

function makeNode(
  parent: Node | null,
  grant: Grant | null,
  conditions: LinkConditions,
  mint: MintRecord,
  clock: Clock,
  revocable: boolean,
  labels: Readonly<Record<string, string>> = NO_LABELS,
  identity: TokenLinkIdentity | null = null,
): Node {
  const chain: Node[] = parent === null ? [] : [...parent.chain];
  const node: Node = {
    id: identity?.id ?? randomUUID(),
    index: chain.length,
    parent,
    chain,
    grant,
    conditions,
    domains: grant === null ? null : compileDomains(grant),
    cond: compileConditions(conditions),
    mint,
    clock,
    cell: revocable ? new RevocationCell() : null,
    labels,
    usage: { calls: 0, cost: 0 },
    external: identity?.link ?? null,
    hash: null,
    summary: null,
  };
  chain.push(node);
  Object.freeze(chain);
  return node;
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

function parseLabels(labels: unknown): Readonly<Record<string, string>> {
  const data = snapshotPlainData(labels, "labels");
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new InvalidInput("labels must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    // Labels name links in audit events, which need non-empty names: an empty one would make the event unwritable.
    if (k.length === 0 || k.length > 64) throw new InvalidInput("label names must have 1 to 64 characters");
    if (typeof v !== "string" || v.length === 0 || v.length > 256) throw new InvalidInput(`labels.${k} must be a string of 1 to 256 characters`);
    out[k] = v;
  }
  return Object.freeze(out);
}

function conditionsOf(grant: Grant): LinkConditions {
  // Own properties only: a key inherited from a polluted Object.prototype is not part of the grant.
  const own = <K extends keyof LinkConditions>(k: K): Grant[K] | undefined => (Object.hasOwn(grant, k) ? grant[k] : undefined);
  const [expiresAt, maxUses, budget, tenants] = [own("expiresAt"), own("maxUses"), own("budget"), own("tenants")];
  return Object.freeze({
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(maxUses === undefined ? {} : { maxUses }),
    ...(budget === undefined ? {} : { budget }),
    ...(tenants === undefined ? {} : { tenants }),
  });
}

/** Root capabilities by root node, so the token layer can find which key a chain was minted under. */
const roots = new WeakMap<Node, Capability>();

/** Kernel only: a root capability. The Mint is its sole caller. */
export function createRoot(grant: unknown, mint: MintRecord, clock: Clock): Capability<FullReach> {
  const parsed = parseGrant(grant);
  const node = makeNode(null, parsed, conditionsOf(parsed), Object.freeze(mint), clock, false);
  const cap = new Capability<FullReach>(CONSTRUCT, node);
  roots.set(node, cap);
  return cap;
}

/** Kernel and token layer only (not exported from the package): the root capability of `cap`'s chain. */
export function rootOf(cap: Capability): Capability {
  const root = nodeOf(cap).chain[0];
  const found = root === undefined ? undefined : roots.get(root);
  if (found === undefined) throw new NotACapability("capability has no registered root");
  return found;
}

/** One link of a verified token as the token layer rebuilds it: the id the token carries, and where its state lives. */
export interface TokenLinkIdentity {
  readonly id: string;
  readonly link: ExternalLink;
}

/** Token layer only: the root of a verified token, whose revocation and usage are those of the shared store. */
export function createTokenRoot(grant: unknown, mint: MintRecord, clock: Clock, identity: TokenLinkIdentity): Capability<FullReach> {
  const parsed = parseGrant(grant);
  const node = makeNode(null, parsed, conditionsOf(parsed), Object.freeze({ ...mint }), clock, false, NO_LABELS, identity);
  const cap = new Capability<FullReach>(CONSTRUCT, node);
  roots.set(node, cap);
  return cap;
}

/** What one attenuation block of a token adds to the chain. */
export type TokenLinkContent =
  | { readonly kind: "narrow"; readonly grant: unknown }
  | { readonly kind: "restrict"; readonly conditions: unknown }
  | { readonly kind: "revocable"; readonly labels: unknown };

/** Token layer only: appends the link of one verified attenuation block, with the block's identity. */
export function appendTokenLink(cap: Capability, content: TokenLinkContent, identity: TokenLinkIdentity): Capability {
  const node = nodeOf(cap);
  let child: Node;
  if (content.kind === "narrow") {
    const parsed = parseGrant(content.grant);
    child = makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, false, NO_LABELS, identity);
  } else if (content.kind === "restrict") {
    child = makeNode(node, null, parseConditions(content.conditions), node.mint, node.clock, false, NO_LABELS, identity);
  } else {
    // A token's revocable link is revoked through the store; its cell is never handed to a caretaker.
    child = makeNode(node, null, Object.freeze({}), node.mint, node.clock, true, parseLabels(content.labels), identity);
  }
  return new Capability(CONSTRUCT, child);
}

/** Appends a link that allows only what `grant` allows. */
export function narrow<R, const G extends Grant>(cap: Capability<R>, grant: G): Capability<Meet<R, ReachOf<G>>> {
  const node = nodeOf(cap);
  const parsed = parseGrant(grant);
  return new Capability(CONSTRUCT, makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, false));
}

/** Appends a link that adds conditions and narrows no domain. */
export function restrict<R>(cap: Capability<R>, conditions: LinkConditions): Capability<R> {
  const node = nodeOf(cap);
  return new Capability(CONSTRUCT, makeNode(node, null, parseConditions(conditions), node.mint, node.clock, false));
}

/** A revocable forwarder for a capability, and the caretaker's switch for it. */
export interface Revocable<R> {
  /** Allows exactly what the original allows, until revoked. */
  readonly capability: Capability<R>;
  /** Revokes the forwarder and everything derived from it, at once; the original and its other descendants are untouched. */
  readonly revoke: (reason?: string) => void;
  /** Whether `revoke` has been called. */
  readonly isRevoked: () => boolean;
}

/**
 * Wraps `cap` in a revocable forwarder (the articles' caretaker). `labels`
 * name the forwarder in audit records (for example `{ session, task }`).
 */
export function revocable<R>(cap: Capability<R>, options?: { readonly labels?: Readonly<Record<string, string>> }): Revocable<R> {
  const node = nodeOf(cap);
  // Own property only: a label inherited from a polluted prototype would put words in the audit log.
  const given = options !== undefined && Object.hasOwn(options, "labels") ? options.labels : undefined;
  const labels = given === undefined ? NO_LABELS : parseLabels(given);
  const child = makeNode(node, null, Object.freeze({}), node.mint, node.clock, true, labels);
  const cell = child.cell as RevocationCell;
  return Object.freeze({
    capability: new Capability<R>(CONSTRUCT, child),
    revoke: (reason = "revoked by its caretaker") => {
      cell.revoke(reason);
    },
    isRevoked: () => cell.revoked,
  });
}

/**
 * An AbortSignal that fires with a Revoked error as soon as `cap` or any
 * ancestor is revoked, for work that must stop mid-flight (a running
 * subprocess, a streaming response). Call `dispose` when the work is done.
 */
export function revocationSignal(cap: Capability): { signal: AbortSignal; dispose: () => void } {
  const node = nodeOf(cap);
  const links = node.chain.flatMap((n) => (n.cell === null ? [] : [{ cell: n.cell, link: n.index, linkId: n.id }]));
  return signalForLinks(links, node.id);
}

/** The current time on the clock of `cap`'s mint, which its expiry is checked against. */
export function clockTime(cap: Capability): number {
  return nodeOf(cap).clock.now();
}

/** The grant of the link nearest `cap` that narrows domains: the latest statement of what the chain may reach. */
export function innermostGrant(cap: Capability): Grant {
  const chain = nodeOf(cap).chain;
  for (let i = chain.length - 1; i >= 0; i--) {
    const grant = chain[i]?.grant;
    if (grant) return grant;
  }
  throw new InvalidInput("capability has no grant in its chain");
}

/** The labels of the chain, the nearest link's value winning for each name. */
export function labelsOf(cap: Capability): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of nodeOf(cap).chain) Object.assign(out, n.labels);
  return Object.freeze(out);
}

/** The earliest `expiresAt` anywhere in the chain, or null when nothing in it expires. */
export function expiresAt(cap: Capability): number | null {
  let earliest: number | null = null;
  for (const n of nodeOf(cap).chain) {
    const e = n.cond.expiresAt;
    if (e !== null && (earliest === null || e < earliest)) earliest = e;
  }
  return earliest;
}

function deny(node: Node, at: Node, code: DenialCode, rule: string, reason: string): Denied {
  return Object.freeze({
    allowed: false,
    capabilityId: node.id,
    code,
    link: at.index,
    linkId: at.id,
    rule,
    reason: `${describe(at)} ${reason}`,
  });
}

function describe(n: Node): string {
  return n.parent === null ? `root capability ${n.id} (minted for ${n.mint.principal})` : `link ${n.index} (${n.id})`;
}

/** A denial for a revoked or expired link anywhere in the chain, or null. */
function lifeDenial(node: Node): Denied | null {
  let refreshed: ExternalLink["ledger"] | null = null;
  for (const n of node.chain) {
    if (n.cell?.revoked) return deny(node, n, "ERR_REVOKED", "revoked", `was revoked: ${n.cell.reason}`);
    const external = n.external;
    if (external === null) continue;
    if (external.ledger !== refreshed) {
      refreshed = external.ledger;
      refreshed.refresh?.();
    }
    const revokedReason = external.ledger.revokedReason(external.key, n.id);
    if (revokedReason !== null) return deny(node, n, "ERR_REVOKED", "revoked", `was revoked: ${revokedReason}`);
  }
  const now = node.clock.now();
  for (const n of node.chain) {
    const e = n.cond.expiresAt;
    if (e !== null && now >= e) return deny(node, n, "ERR_EXPIRED", "expiresAt", `expired at ${new Date(e).toISOString()}`);
  }
  return null;
}

/** A denial for a use count or budget anywhere in the chain without room for one more request of `cost`, or null. */
function limitDenial(node: Node, cost: number): Denied | null {
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
function evaluate(node: Node, req: CheckedRequest, cost: number): Decision {
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
 * Why `cap` can allow nothing at all now: a link revoked or expired, or a use
 * count or call budget spent, anywhere up the chain. Null while it is live.
 */
export function deadDenial(cap: Capability): Denied | null {
  const node = nodeOf(cap);
  return lifeDenial(node) ?? limitDenial(node, 0);
}

function costOf(options: UseOptions | undefined): number {
  const cost = options !== undefined && Object.hasOwn(options, "cost") ? options.cost : 0;
  if (typeof cost !== "number" || !Number.isFinite(cost) || cost < 0) {
    throw new InvalidInput(`cost must be a finite number of units, zero or more; got ${typeof cost === "number" ? String(cost) : typeof cost}`);
  }
  return cost;
}

/** Whether `request` would be allowed now; nothing is charged. Throws InvalidInput for a malformed request. */
export function check(cap: Capability, request: Request): Decision {
  const node = nodeOf(cap);
  return evaluate(node, checkRequest(request), 0);
}

/**
 * Decides `request` and, when allowed, charges one use and `cost` to every
 * link up the chain. Deciding and charging happen in one synchronous step, so
 * concurrent callers can never both spend the last use.
 */
export function authorize(cap: Capability, request: Request, options?: UseOptions): Decision {
  const node = nodeOf(cap);
  const cost = costOf(options);
  const req = checkRequest(request);
  const decision = evaluate(node, req, cost);
  if (!decision.allowed) return decision;
  if (!chargeExternal(node.chain, cost)) {
    // Another process spent the room between the check and the charge; a fresh decision says where.
    const again = evaluate(node, req, cost);
    return again.allowed ? deny(node, node, "ERR_BUDGET_EXHAUSTED", "budget", "had its remaining uses spent concurrently elsewhere") : again;
  }
  for (const n of node.chain) {
    if (n.external !== null) continue;
    n.usage.calls += 1;
    n.usage.cost += cost;
  }
  return decision;
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

/** Like `authorize`, but throws the typed denial error (CapabilityDenied, Expired, Revoked, BudgetExhausted). */
export function assertAuthorized(cap: Capability, request: Request, options?: UseOptions): void {
  const decision = authorize(cap, request, options);
  if (!decision.allowed) throw denialError(decision);
}

/** True only for a capability made by this kernel. */
export function isCapability(value: unknown): value is Capability {
  try {
    nodeOf(value);
    return true;
  } catch {
    return false;
  }
}
