/**
 * One link of a capability's chain, as the kernel keeps it: never handed out.
 * A capability object is only a frozen handle on its Node.
 */
import { timeOrderedId } from "./ids.js";
import type { AuditSubject } from "./audit-sink.js";
import type { Clock } from "./clock.js";
import { canonicalJson, sha256Hex } from "./content-hash.js";
import { InvalidInput } from "./errors.js";
import { handedOut, isSharedGrant, type Grant, type LinkConditions } from "./grant.js";
import type { ExternalLink, RootGuard } from "./ledger.js";
import { deepFreeze, snapshotPlainData } from "./plain-data.js";
import { RateLog } from "./rate-window.js";
import { RevocationCell } from "./revocation.js";
import { compileApprovals, compileConditions, compileDomains, type CompiledApprovalRule, type CompiledConditions, type CompiledDomains } from "./rules.js";

/** Who the root capability was minted for, and by whom: carried unchanged by every descendant. */
export interface MintRecord {
  readonly principal: string;
  readonly tenants: readonly string[];
  readonly roles: readonly string[];
  readonly requestId: string;
  readonly issuedAt: number;
  readonly issuer: string;
  /**
   * Which mint issued the root: `mint:<random id>` for a mint made in this
   * process (its `id`), `key:<key id>:<key fingerprint>` for a root signed
   * under a Biscuit key (a token mint's, and every token verified with that
   * key). Unlike `issuer`, free text any mint may claim, code cannot choose it.
   */
  readonly mintId: string;
}

/** One approver of a call: the principal and roles of the capability they approved with. */
export interface Approver {
  readonly principal: string;
  readonly roles: readonly string[];
}

/**
 * An approval as the link it made carries it: its id, who approved, and the
 * exact requests approved, each by its canonical key and, for a call, the
 * hash of its arguments (null: the request alone is approved). A database
 * write approved with its arguments is marked `write`: under a stamp with
 * any such binding, every database write must be one of those bound
 * (see boundWriteDenial).
 */
export interface ApprovalStamp {
  readonly id: string;
  readonly approvers: readonly Approver[];
  readonly bindings: readonly { readonly request: string; readonly args: string | null; readonly write?: boolean }[];
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
  /** Only on a link attached in shadow: the grant observed, which decides nothing. */
  readonly shadow?: Grant;
  /** Only on a link made by an approval: its id and the principals who approved. */
  readonly approval?: { readonly id: string; readonly approvers: readonly string[] };
}

export interface Node {
  readonly id: string;
  readonly index: number;
  readonly parent: Node | null;
  /** Root first, this node last. */
  readonly chain: readonly Node[];
  readonly grant: Grant | null;
  readonly conditions: LinkConditions;
  readonly domains: CompiledDomains | null;
  /** The grant's approval rules, or null when it has none. */
  readonly approvals: readonly CompiledApprovalRule[] | null;
  /** Set on a link an approval made: the exact calls it approves. */
  readonly stamp: ApprovalStamp | null;
  /** Set on a link attached in shadow: the grant it observes, compiled. */
  readonly shadow: { readonly grant: Grant; readonly domains: CompiledDomains; readonly cond: CompiledConditions } | null;
  readonly cond: CompiledConditions;
  readonly mint: MintRecord;
  readonly clock: Clock;
  readonly cell: RevocationCell | null;
  readonly labels: Readonly<Record<string, string>>;
  /** Allowed requests made through this link or any descendant, and the cost they were charged. */
  readonly usage: { calls: number; cost: number };
  /** One log per rate of the link's conditions, or null when it has none. */
  readonly rateLogs: readonly RateLog[] | null;
  /**
   * Set for a link that came from a verified token, or whose limits moved to
   * the token store when it was serialized: its usage (and, for a token's
   * link, its revocation) live in a shared store instead.
   */
  external: ExternalLink | null;
  /** Set on a root bound to a revocation list (a mint's or a verifier's token store): consulted for the whole chain. */
  readonly guard: RootGuard | null;
  hash: string | null;
  summary: LinkSummary | null;
  /** The audit subject of a capability on this link, made on its first audited use and shared by every later event. */
  subject: AuditSubject | null;
  /** What the chain up to this link holds anywhere (CHAIN_* bits), so a decision skips the walks that cannot deny. */
  readonly traits: number;
  /** The earliest `expiresAt` of the chain, or null when nothing in it expires. */
  readonly chainExpiresAt: number | null;
}

/** A link of the chain limits uses or budget. */
export const CHAIN_LIMITED = 1;
/** A link of the chain has windowed rates. */
export const CHAIN_RATED = 2;
/** A link of the chain states approval rules. */
export const CHAIN_APPROVALS = 4;
/** A link of the chain is attached in shadow. */
export const CHAIN_SHADOW = 8;
/** A link of the chain is an approval that binds database writes to their arguments. */
export const CHAIN_BOUND_WRITES = 16;

/** Where a link's id and state come from when it is rebuilt from a verified token block. */
export interface LinkIdentity {
  readonly id: string;
  readonly link: ExternalLink;
}

/** What a new node is made with besides its content. */
export interface NodeOrigin {
  readonly identity?: LinkIdentity | null;
  /** Only for a root. */
  readonly guard?: RootGuard | null;
  /** Only for a link an approval makes (kernel only). */
  readonly stamp?: ApprovalStamp;
  /** Only for a link attached in shadow. */
  readonly shadow?: Grant;
}

export function hashOf(node: Node): string {
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
        ...(node.stamp === null ? {} : { approval: node.stamp }),
        ...(node.shadow === null ? {} : { shadow: node.shadow.grant }),
      }),
    );
  }
  return node.hash;
}

/** Every summary the kernel made: deep-frozen plain data, which the audit log can encode once and trust not to change. */
const SUMMARIES = new WeakSet<object>();

/** Made once per link, so every audit event of a link shares one summary object. */
export function summaryOf(node: Node): LinkSummary {
  if (node.summary === null) {
    node.summary = Object.freeze({
      id: node.id,
      hash: hashOf(node),
      grant: handedOut(node.grant),
      conditions: node.conditions,
      revocable: node.cell !== null,
      labels: node.labels,
      ...(node.stamp === null ? {} : { approval: deepFreeze({ id: node.stamp.id, approvers: node.stamp.approvers.map((a) => a.principal) }) }),
      ...(node.shadow === null ? {} : { shadow: handedOut(node.shadow.grant) }),
    });
    SUMMARIES.add(node.summary);
  }
  return node.summary;
}

/** Whether `value` is a link summary the kernel made (its grant, conditions and labels are frozen plain data). */
export function isLinkSummary(value: unknown): value is LinkSummary {
  return typeof value === "object" && value !== null && SUMMARIES.has(value);
}

/** Compiled domains of the grants many links share (parses of hardened grants, which never change): compiled once. */
const COMPILED_DOMAINS = new WeakMap<Grant, CompiledDomains>();

function domainsOf(grant: Grant): CompiledDomains {
  // Only shared grants are kept: an entry per link would cost the collector more than compiling does.
  if (!isSharedGrant(grant)) return compileDomains(grant);
  let domains = COMPILED_DOMAINS.get(grant);
  if (domains === undefined) {
    domains = compileDomains(grant);
    COMPILED_DOMAINS.set(grant, domains);
  }
  return domains;
}

export function makeNode(
  parent: Node | null,
  grant: Grant | null,
  conditions: LinkConditions,
  mint: MintRecord,
  clock: Clock,
  revocable: boolean,
  labels: Readonly<Record<string, string>> = NO_LABELS,
  origin: NodeOrigin = {},
): Node {
  const identity = origin.identity ?? null;
  const cond = compileConditions(conditions);
  const chain: Node[] = parent === null ? [] : [...parent.chain];
  const approvals = grant === null ? null : compileApprovals(grant);
  const own =
    (cond.maxUses !== null || cond.budgetCalls !== null || cond.budgetCost !== null ? CHAIN_LIMITED : 0) |
    (cond.rates !== null ? CHAIN_RATED : 0) |
    (approvals !== null ? CHAIN_APPROVALS : 0) |
    (origin.shadow !== undefined ? CHAIN_SHADOW : 0) |
    (origin.stamp?.bindings.some((b) => b.write === true) === true ? CHAIN_BOUND_WRITES : 0);
  const node: Node = {
    id: identity?.id ?? timeOrderedId(),
    index: chain.length,
    parent,
    chain,
    grant,
    conditions,
    domains: grant === null ? null : domainsOf(grant),
    approvals,
    stamp: origin.stamp ?? null,
    shadow: origin.shadow === undefined ? null : { grant: origin.shadow, domains: compileDomains(origin.shadow), cond: compileConditions(origin.shadow) },
    cond,
    rateLogs: cond.rates === null ? null : cond.rates.map(() => new RateLog()),
    mint,
    clock,
    cell: revocable ? new RevocationCell() : null,
    labels,
    usage: { calls: 0, cost: 0 },
    external: identity?.link ?? null,
    guard: parent === null ? (origin.guard ?? null) : null,
    hash: null,
    summary: null,
    subject: null,
    traits: (parent === null ? 0 : parent.traits) | own,
    chainExpiresAt: earlier(parent === null ? null : parent.chainExpiresAt, cond.expiresAt),
  };
  chain.push(node);
  Object.freeze(chain);
  return node;
}

function earlier(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null || a <= b ? a : b;
}

/** Label names that attribute audit events; only agentcap's own caretakers set them (see `caretaker`). */
export const RESERVED_LABELS: readonly string[] = Object.freeze(["session", "task", "tool", "agent"]);

export const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** The conditions of a link that adds none (a forwarder, a shadow link): one shared, frozen value. */
export const NO_CONDITIONS: LinkConditions = Object.freeze({});

/** Every result of parseLabels: frozen objects of strings, so one handed back needs no second reading. */
const PARSED_LABELS = new WeakSet<object>();

/** Validates labels into a frozen copy; labels it already returned (a caretaker's, made once and reused) come back as they are. */
export function parseLabels(labels: unknown): Readonly<Record<string, string>> {
  if (typeof labels === "object" && labels !== null && PARSED_LABELS.has(labels)) return labels as Readonly<Record<string, string>>;
  const data = snapshotPlainData(labels, "labels");
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new InvalidInput("labels must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    // Labels name links in audit events, which need non-empty names: an empty one would make the event unwritable.
    if (k.length === 0 || k.length > 64) throw new InvalidInput("label names must have 1 to 64 characters");
    if (typeof v !== "string" || v.length === 0 || v.length > 256) throw new InvalidInput(`labels.${k} must be a string of 1 to 256 characters`);
    out[k] = v;
  }
  Object.freeze(out);
  PARSED_LABELS.add(out);
  return out;
}

const CONDITION_KEYS = ["expiresAt", "maxUses", "budget", "tenants", "rates"] as const;

export function conditionsOf(grant: Grant): LinkConditions {
  const out: Record<string, unknown> = {};
  // Own properties only: a key inherited from a polluted Object.prototype is not part of the grant.
  let any = false;
  for (const k of CONDITION_KEYS) {
    if (Object.hasOwn(grant, k) && grant[k] !== undefined) {
      out[k] = grant[k];
      any = true;
    }
  }
  // A grant without conditions (most narrowings) shares the one empty value instead of a fresh one per link.
  return any ? Object.freeze(out) : NO_CONDITIONS;
}

