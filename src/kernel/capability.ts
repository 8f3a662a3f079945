import type { Clock } from "./clock.js";
import { denialError, type Decision, type Denied } from "./decision.js";
import { InvalidInput, NotACapability } from "./errors.js";
import { argsOf, charge, costOf, deny, evaluate, lifeDenial, limitDenial, matchingApprovalRules, type CheckOptions, type UseOptions } from "./evaluation.js";
import { handedOut, parseConditions, readGrant, type Grant, type LinkConditions } from "./grant.js";
import { bindPrincipal } from "./principal-refs.js";
import {
  conditionsOf,
  hashOf,
  makeNode,
  NO_CONDITIONS,
  NO_LABELS,
  parseLabels,
  RESERVED_LABELS,
  summaryOf,
  type ApprovalStamp,
  type NodeOrigin,
  type LinkSummary,
  type MintRecord,
  type Node,
} from "./node.js";
import type { FullReach, Meet, ReachOf, ReachVariance } from "./reach.js";
import { checkRequest, type Request } from "./request.js";
import type { CompiledApprovalRule } from "./rules.js";
import { RevocationCell, signalForLinks } from "./revocation.js";

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
    // The only way to reach a capability's state, and it never leaves the kernel.
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
    return handedOut(nodeOf(this).grant);
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

  toJSON(): never {
    throw new NotACapability("a capability cannot be serialized to JSON; use a token to pass authority to another process");
  }
}

Object.freeze(Capability.prototype);
Object.freeze(Capability);

export { nodeOf };

/** Root capabilities by root node, so the token layer can find which key a chain was minted under. */
const roots = new WeakMap<Node, Capability>();

/** Kernel only: wraps a node in a capability, registering it when it is a root. */
export function wrap<R>(node: Node): Capability<R> {
  const cap = new Capability<R>(CONSTRUCT, node);
  // A root is registered once: a second handle on it (an ancestor's, for the token layer) must not replace the one its key is remembered by.
  if (node.parent === null && !roots.has(node)) roots.set(node, cap);
  return cap;
}

/** Kernel only: a root capability. The Mint is its sole caller. */
export function createRoot(grant: unknown, mint: MintRecord, clock: Clock, origin: NodeOrigin = {}): Capability<FullReach> {
  const parsed = bindPrincipal(readGrant(grant), mint);
  return wrap(makeNode(null, parsed, conditionsOf(parsed), Object.freeze({ ...mint }), clock, false, NO_LABELS, origin));
}

/** Kernel and token layer only: the root capability of `cap`'s chain. */
export function rootOf(cap: Capability): Capability {
  const root = nodeOf(cap).chain[0];
  const found = root === undefined ? undefined : roots.get(root);
  if (found === undefined) throw new NotACapability("capability has no registered root");
  return found;
}

/**
 * Appends a link that allows only what `grant` allows; the result never
 * allows more than `cap`. Throws InvalidInput naming a bad field. A hardened
 * grant (deep-frozen plain data) is read once; later links reuse its parse.
 */
export function narrow<R, const G extends Grant>(cap: Capability<R>, grant: G): Capability<Meet<R, ReachOf<G>>> {
  const node = nodeOf(cap);
  const parsed = bindPrincipal(readGrant(grant), node.mint);
  return wrap(makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, false));
}

/**
 * Appends a link that adds conditions (expiry, uses, budget, tenants) and
 * narrows no domain. Throws InvalidInput naming a bad field.
 */
export function restrict<R>(cap: Capability<R>, conditions: LinkConditions): Capability<R> {
  const node = nodeOf(cap);
  return wrap(makeNode(node, null, parseConditions(conditions), node.mint, node.clock, false));
}

/** Whether `request` would be allowed now; nothing is charged. Throws InvalidInput for a malformed request or arguments. */
export function check(cap: Capability, request: Request, options?: CheckOptions): Decision {
  return evaluate(nodeOf(cap), checkRequest(request), 0, argsOf(options));
}

/**
 * Decides `request` and, when allowed, charges one use and `cost` to every
 * link up the chain. Deciding and charging happen in one synchronous step,
 * so concurrent callers can never both spend the last use. Throws
 * InvalidInput for a malformed request or cost.
 */
export function authorize(cap: Capability, request: Request, options?: UseOptions): Decision {
  const node = nodeOf(cap);
  const cost = costOf(options);
  const req = checkRequest(request);
  const args = argsOf(options);
  const decision = evaluate(node, req, cost, args);
  if (!decision.allowed || charge(node, cost, req)) return decision;
  // Another process spent the room between the check and the charge; a fresh decision says where.
  const again = evaluate(node, req, cost, args);
  return again.allowed ? deny(node, node, "ERR_BUDGET_EXHAUSTED", "budget", "had its remaining uses spent concurrently elsewhere") : again;
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
 * name the forwarder in audit records. The names `session`, `task`, `tool`
 * and `agent` are reserved for the runtime's and the gateway's own
 * caretakers, which attribute every audit event: a label that claims one of
 * them here is refused with InvalidInput, so code holding a capability cannot
 * file its actions under another session.
 */
export function revocable<R>(cap: Capability<R>, options?: { readonly labels?: Readonly<Record<string, string>> }): Revocable<R> {
  const node = nodeOf(cap);
  // Own property only: a label inherited from a polluted prototype would put words in the audit log.
  const given = options !== undefined && Object.hasOwn(options, "labels") ? options.labels : undefined;
  const labels = given === undefined ? NO_LABELS : parseLabels(given);
  const reserved = RESERVED_LABELS.find((name) => Object.hasOwn(labels, name));
  if (reserved !== undefined) {
    throw new InvalidInput(`labels.${reserved} is reserved for agentcap's own caretakers (session, task, tool, agent attribute audit events); choose another label name`);
  }
  return forwarder(node, labels);
}

/**
 * Kernel and agentcap's own layers only (kernel/internal): a revocable
 * forwarder whose labels may include the reserved names. The runtime labels
 * sessions, tasks and agents, the dispatcher tools, the gateway its sessions.
 */
export function caretaker<R>(cap: Capability<R>, labels: Readonly<Record<string, string>>): Revocable<R> {
  return forwarder(nodeOf(cap), parseLabels(labels));
}

/**
 * Kernel and agentcap's own layers only (kernel/internal): what
 * `caretaker(narrow(cap, grant), labels)` gives, as one link that narrows to
 * `grant` and is revocable. It decides exactly as those two links do (a
 * request must pass the grant, and revoking the link refuses everything
 * through it), and is one link, one id, to make: the dispatcher makes one
 * for every call. Throws InvalidInput for a bad grant.
 */
export function narrowedCaretaker<R>(cap: Capability<R>, grant: Grant, labels: Readonly<Record<string, string>>): Revocable<R> {
  const node = nodeOf(cap);
  const parsed = bindPrincipal(readGrant(grant), node.mint);
  return revocableHandle(makeNode(node, parsed, conditionsOf(parsed), node.mint, node.clock, true, parseLabels(labels)));
}

function forwarder<R>(node: Node, labels: Readonly<Record<string, string>>): Revocable<R> {
  return revocableHandle(makeNode(node, null, NO_CONDITIONS, node.mint, node.clock, true, labels));
}

/** The capability of a revocable node, with its caretaker's switch. */
function revocableHandle<R>(child: Node): Revocable<R> {
  const cell = child.cell as RevocationCell;
  return Object.freeze({
    capability: wrap<R>(child),
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
  const watched = signalForLinks(links, node.id);
  const guard = (node.chain[0] as Node).guard;
  if (guard === null || watched.signal.aborted) return watched;
  // A revocation kept in the store (a principal, a session, a key, a link id) fires the signal as soon as the store learns of it.
  const controller = new AbortController();
  const abort = (reason: unknown) => {
    dispose();
    controller.abort(reason);
  };
  const onLinks = () => {
    abort(watched.signal.reason);
  };
  watched.signal.addEventListener("abort", onLinks, { once: true });
  const lookAgain = () => {
    const dead = lifeDenial(node);
    // A store that cannot say what is revoked stops the work too (fail closed), with StoreUnavailable rather than Revoked.
    if (dead !== null && (dead.code === "ERR_REVOKED" || dead.code === "ERR_STORE_UNAVAILABLE")) abort(denialError(dead));
  };
  const unsubscribe = guard.list.subscribe(lookAgain);
  const dispose = () => {
    unsubscribe();
    watched.signal.removeEventListener("abort", onLinks);
    watched.dispose();
  };
  lookAgain();
  return { signal: controller.signal, dispose };
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
  return nodeOf(cap).chainExpiresAt;
}

/**
 * Why `cap` can allow nothing at all now: a link revoked or expired, or a use
 * count or call budget spent, anywhere up the chain. Null while it is live.
 */
export function deadDenial(cap: Capability): Denied | null {
  const node = nodeOf(cap);
  return lifeDenial(node) ?? limitDenial(node, 0);
}

/**
 * Why `cap` may no longer act at all: revoked or expired anywhere up the
 * chain (uses and budgets are not looked at, so a use just charged does not
 * count against it). Null while it is live. Resources ask again after
 * waiting for the audit log, just before acting.
 */
export function liveDenial(cap: Capability): Denied | null {
  return lifeDenial(nodeOf(cap));
}

/** Like `authorize`, but throws the typed denial error (CapabilityDenied, Expired, Revoked, BudgetExhausted). */
export function assertAuthorized(cap: Capability, request: Request, options?: UseOptions): void {
  const decision = authorize(cap, request, options);
  if (!decision.allowed) throw denialError(decision);
}

/**
 * Attaches `grant` in shadow: the result decides exactly as `cap` does and
 * acts as `cap` would, and an allowed decision that `grant` (its domains,
 * tenants and expiry) would have denied carries the disagreement in
 * `decision.shadow`, which audit events record (`agentcap audit query
 * --shadow-diff` lists them by tool and rule). For trying a tighter policy
 * on real traffic before enforcing it. Throws InvalidInput for a bad grant.
 */
export function shadow<R>(cap: Capability<R>, grant: Grant): Capability<R> {
  const node = nodeOf(cap);
  return wrap(makeNode(node, null, NO_CONDITIONS, node.mint, node.clock, false, NO_LABELS, { shadow: bindPrincipal(readGrant(grant), node.mint) }));
}

/**
 * Kernel and agentcap's own layers only (kernel/internal): the approval rules
 * of `cap`'s chain that `request` (made with `options.args`, if known)
 * matches, with the index of the link that states each.
 */
export function approvalRulesFor(cap: Capability, request: Request, options?: CheckOptions): readonly { readonly link: number; readonly rule: CompiledApprovalRule }[] {
  return matchingApprovalRules(nodeOf(cap), checkRequest(request), argsOf(options));
}

/**
 * Kernel only (the approval flow): appends a link carrying `stamp`, which
 * approves exactly the requests it binds, under `conditions` (a use count
 * and an expiry). Only code that checked the approvers makes one.
 */
export function stampApproval<R>(cap: Capability<R>, stamp: ApprovalStamp, conditions: LinkConditions): Capability<R> {
  const node = nodeOf(cap);
  return wrap(makeNode(node, null, parseConditions(conditions), node.mint, node.clock, false, NO_LABELS, { stamp }));
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
