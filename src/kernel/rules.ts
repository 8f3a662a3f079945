import { addressBits, addressRangeBits, classifyAddress, isIpLiteral, unbracket } from "./address.js";
import { isWithin, pathHasPrefix } from "./canonical-forms.js";
import { actionKey, actionPermits } from "./field-actions.js";
import { describeRule, ruleKey } from "./row-rules.js";
import type { ApprovalRule, ArgPattern, Grant, LinkConditions, Scalar } from "./grant.js";
import type { CheckedRequest } from "./request.js";

/*
 * Grants compiled into the form the matcher reads: every key an own property
 * (so a polluted Object.prototype cannot add one), lists turned into sets.
 * A domain is `null` when the grant does not mention it: nothing is granted.
 */

// Operation and method lists hold at most seven names: the grant's own frozen array is searched as it is.
interface CompiledFsRule {
  readonly path: string;
  readonly ops: readonly string[];
  readonly subtree: boolean;
}
interface CompiledHttpRule {
  readonly origin: string;
  readonly methods: readonly string[];
  readonly pathPrefix: string;
  readonly allowPrivateNetwork: boolean;
  readonly literalAddress: string | null;
  /** The bit-string prefixes of the rule's address ranges (see address.ts), or null when it names none. */
  readonly ranges: readonly string[] | null;
}
interface CompiledDbRule {
  readonly model: string;
  readonly ops: readonly string[];
  readonly fields: ReadonlySet<string> | null;
  readonly scope: readonly (readonly [string, Scalar])[];
  /** Fields whose action is not "allow", with the action as actionKey writes it; null when there are none. */
  readonly actions: ReadonlyMap<string, string> | null;
  /** The row rule as ruleKey writes it, and as a person reads it; null without one. */
  readonly rows: { readonly key: string; readonly text: string } | null;
  readonly maxRows: number | null;
}
interface CompiledRevokeRule {
  readonly target: string;
  readonly ids: ReadonlySet<string> | null;
}
interface CompiledExecRule {
  readonly program: string;
  readonly args: readonly ArgPattern[] | null;
  readonly allowExtraArgs: boolean;
  readonly cwd: string | null;
  readonly env: ReadonlySet<string>;
}

export interface CompiledDomains {
  readonly tools: ReadonlySet<string> | null;
  readonly fs: readonly CompiledFsRule[] | null;
  readonly http: readonly CompiledHttpRule[] | null;
  readonly db: readonly CompiledDbRule[] | null;
  readonly exec: readonly CompiledExecRule[] | null;
  readonly revoke: readonly CompiledRevokeRule[] | null;
  readonly audit: readonly string[] | null;
}

/** One approval rule as the matcher reads it. */
export interface CompiledApprovalRule {
  readonly tools: ReadonlySet<string> | null;
  readonly actions: ReadonlySet<string> | null;
  readonly input: readonly (readonly [string, ArgPattern])[] | null;
  readonly approvers: ReadonlySet<string>;
  readonly quorum: number;
  /** The rule as the grant states it, for approvers to read. */
  readonly rule: ApprovalRule;
}

export interface CompiledConditions {
  readonly expiresAt: number | null;
  readonly maxUses: number | null;
  readonly budgetCalls: number | null;
  readonly budgetCost: number | null;
  readonly tenants: ReadonlySet<string> | null;
  readonly rates: readonly CompiledRate[] | null;
}

/** One rate as the window counter reads it. */
export interface CompiledRate {
  readonly perMs: number;
  readonly calls: number | null;
  readonly cost: number | null;
  readonly tools: ReadonlySet<string> | null;
  readonly actions: ReadonlySet<string> | null;
}

const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined =>
  Object.hasOwn(o, k) ? o[k] : undefined;

/** The address an origin names when its host is an IP literal, else null; remembered per origin, as grants repeat a few. */
const literalAddresses = new Map<string, string | null>();

function literalAddressOf(origin: string): string | null {
  let address = literalAddresses.get(origin);
  if (address === undefined) {
    const host = new URL(origin).hostname;
    address = isIpLiteral(host) ? unbracket(host) : null;
    if (literalAddresses.size >= 1024) literalAddresses.clear();
    literalAddresses.set(origin, address);
  }
  return address;
}

/** The bit-string prefixes of a rule's ranges, remembered per range: a grant names a few, in every narrowing. */
const rangePrefixes = new Map<string, string>();

function rangePrefix(range: string): string {
  let prefix = rangePrefixes.get(range);
  if (prefix === undefined) {
    prefix = addressRangeBits(range);
    if (rangePrefixes.size >= 1024) rangePrefixes.clear();
    rangePrefixes.set(range, prefix);
  }
  return prefix;
}

export function compileDomains(grant: Grant): CompiledDomains {
  const tools = own(grant, "tools");
  const fs = own(grant, "fs");
  const http = own(grant, "http");
  const db = own(grant, "db");
  const exec = own(grant, "exec");
  const revoke = own(grant, "revoke");
  const audit = own(grant, "audit");
  return Object.freeze({
    tools: tools ? new Set(tools) : null,
    fs: fs
      ? fs.map((r) => ({ path: r.path, ops: r.ops, subtree: own(r, "subtree") ?? true }))
      : null,
    http: http
      ? http.map((r) => {
          const addresses = own(r, "addresses");
          return {
            origin: r.origin,
            methods: r.methods,
            pathPrefix: own(r, "pathPrefix") ?? "/",
            allowPrivateNetwork: own(r, "allowPrivateNetwork") ?? false,
            literalAddress: literalAddressOf(r.origin),
            ranges: addresses ? addresses.map(rangePrefix) : null,
          };
        })
      : null,
    db: db
      ? db.map((r) => {
          const fields = own(r, "fields");
          const rows = own(r, "rows");
          const actions = Object.entries(own(r, "fieldActions") ?? {})
            .map(([f, a]) => [f, actionKey(a)] as const)
            .filter(([, a]) => a !== "allow");
          return {
            model: r.model,
            ops: r.ops,
            fields: fields ? new Set(fields) : null,
            // Principal references were bound when the link was made; one left unbound (an object) equals no request's value, so it allows nothing.
            scope: Object.entries(own(r, "scope") ?? {}) as [string, Scalar][],
            actions: actions.length > 0 ? new Map(actions) : null,
            rows: rows === undefined ? null : { key: ruleKey(rows), text: describeRule(rows) },
            maxRows: own(r, "maxRows") ?? null,
          };
        })
      : null,
    exec: exec
      ? exec.map((r) => ({
          program: r.program,
          args: own(r, "args") ?? null,
          allowExtraArgs: own(r, "allowExtraArgs") ?? false,
          cwd: own(r, "cwd") ?? null,
          env: new Set(own(r, "env") ?? []),
        }))
      : null,
    revoke: revoke
      ? revoke.map((r) => {
          const ids = own(r, "ids");
          return { target: r.target, ids: ids ? new Set(ids) : null };
        })
      : null,
    audit: audit ?? null,
  });
}

/** A grant's approval rules, compiled; null when it has none. */
export function compileApprovals(grant: Grant): readonly CompiledApprovalRule[] | null {
  const rules = own(grant, "approval");
  if (rules === undefined || rules.length === 0) return null;
  return Object.freeze(
    rules.map((r) => {
      const tools = own(r, "tools");
      const actions = own(r, "actions");
      const input = own(r, "input");
      return Object.freeze({
        tools: tools ? new Set(tools) : null,
        actions: actions ? new Set<string>(actions) : null,
        input: input ? Object.entries(input) : null,
        approvers: new Set(r.approvers),
        quorum: own(r, "quorum") ?? 1,
        rule: r,
      });
    }),
  );
}

/** Marks a decision made without the call's arguments. */
export const NO_ARGS: unique symbol = Symbol("agentcap.noArgs");

/** Whether `rule` asks for approval of `r` made with `args` (NO_ARGS: not known, so every argument pattern counts as matched). */
export function approvalMatches(rule: CompiledApprovalRule, r: CheckedRequest, args: unknown): boolean {
  const named = (rule.tools !== null && r.kind === "tool" && rule.tools.has(r.tool)) || (rule.actions !== null && rule.actions.has(r.action));
  if (!named) return false;
  if (rule.input === null || args === NO_ARGS) return true;
  if (typeof args !== "object" || args === null || Array.isArray(args)) return false;
  return rule.input.every(([field, pattern]) => {
    if (!Object.hasOwn(args, field)) return false;
    const value: unknown = (args as Record<string, unknown>)[field];
    if (typeof pattern === "object" && Object.hasOwn(pattern, "any")) return true;
    return typeof value === "string" && argMatches(pattern, value);
  });
}

/** Whether a principal with `roles` is one of the rule's approvers, by name or by role. */
export function isApproverOf(rule: CompiledApprovalRule, principal: string, roles: readonly string[]): boolean {
  return rule.approvers.has(principal) || roles.some((role) => rule.approvers.has(`role:${role}`));
}

/** A canonical request as one string: two requests have the same key exactly when they ask for the same action on the same thing. */
export function requestKey(r: CheckedRequest): string {
  switch (r.kind) {
    case "tool":
      return JSON.stringify([r.action, r.tenant, r.tool]);
    case "fs":
      return JSON.stringify([r.action, r.tenant, r.path]);
    case "http":
      return JSON.stringify([r.action, r.tenant, r.method, r.url.href, r.address]);
    case "db":
      return JSON.stringify([
        r.action,
        r.tenant,
        r.model,
        [...r.fields].sort(),
        [...r.scope].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        // Only a read that includes relations says so, so every other request keeps the key it had.
        ...(r.include === null ? [] : [r.include]),
      ]);
    case "exec":
      return JSON.stringify([r.action, r.tenant, r.argv, r.cwd, [...r.env].sort()]);
    case "revoke":
      return JSON.stringify([r.action, r.tenant, r.target, r.id]);
    case "audit":
      return JSON.stringify([r.action, r.tenant, r.op]);
  }
}

/** What a link without conditions compiles to (most links: forwarders, a tool call's narrowing): one shared, frozen value. */
const NO_CONDITIONS: CompiledConditions = Object.freeze({ expiresAt: null, maxUses: null, budgetCalls: null, budgetCost: null, tenants: null, rates: null });

export function compileConditions(c: LinkConditions): CompiledConditions {
  if (Object.keys(c).length === 0) return NO_CONDITIONS;
  const budget = own(c, "budget");
  const tenants = own(c, "tenants");
  return Object.freeze({
    expiresAt: own(c, "expiresAt") ?? null,
    maxUses: own(c, "maxUses") ?? null,
    budgetCalls: budget ? (own(budget, "calls") ?? null) : null,
    budgetCost: budget ? (own(budget, "cost") ?? null) : null,
    tenants: tenants ? new Set(tenants) : null,
    rates: compileRates(own(c, "rates")),
  });
}

function compileRates(rates: LinkConditions["rates"]): readonly CompiledRate[] | null {
  if (rates === undefined) return null;
  return Object.freeze(
    rates.map((r) => {
      const tools = own(r, "tools");
      const actions = own(r, "actions");
      return Object.freeze({
        perMs: r.per * 1000,
        calls: own(r, "calls") ?? null,
        cost: own(r, "cost") ?? null,
        tools: tools ? new Set(tools) : null,
        actions: actions ? new Set<string>(actions) : null,
      });
    }),
  );
}

/** Whether a rate counts `r`: every request when it names no tool and no action. */
export function rateCounts(rate: CompiledRate, r: CheckedRequest): boolean {
  if (rate.tools === null && rate.actions === null) return true;
  return (rate.tools !== null && r.kind === "tool" && rate.tools.has(r.tool)) || (rate.actions !== null && rate.actions.has(r.action));
}

/** Why a link's domains do not allow the request, or null when they do. */
export function domainDenial(d: CompiledDomains, r: CheckedRequest): { rule: string; reason: string } | null {
  switch (r.kind) {
    case "tool":
      if (d.tools === null) return { rule: "tools", reason: "grants no tools" };
      return d.tools.has(r.tool) ? null : { rule: "tools", reason: `does not grant tool ${JSON.stringify(r.tool)}` };
    case "fs":
      if (d.fs === null) return { rule: "fs", reason: "grants no file access" };
      for (const rule of d.fs) {
        if (rule.ops.includes(r.op) && (rule.subtree ? isWithin(r.path, rule.path) : r.path === rule.path)) return null;
      }
      return { rule: "fs", reason: `does not grant ${r.op} on ${r.path}` };
    case "http":
      return httpDenial(d, r);
    case "db":
      return dbDenial(d, r);
    case "exec":
      return execDenial(d, r);
    case "revoke":
      if (d.revoke === null) return { rule: "revoke", reason: "grants no revocations" };
      for (const rule of d.revoke) if (rule.target === r.target && (rule.ids === null || rule.ids.has(r.id))) return null;
      return { rule: "revoke", reason: `does not grant revoking ${r.target} ${JSON.stringify(r.id)}` };
    case "audit":
      if (d.audit === null) return { rule: "audit", reason: "grants no audit access" };
      return d.audit.includes(r.op) ? null : { rule: "audit", reason: `does not grant ${r.op} on the audit log` };
  }
}

function httpDenial(d: CompiledDomains, r: Extract<CheckedRequest, { kind: "http" }>) {
  if (d.http === null) return { rule: "http", reason: "grants no HTTP access" };
  const host = unbracket(r.url.hostname);
  const target = r.address ?? (isIpLiteral(host) ? host : null);
  const targetClass = target === null ? "public" : classifyAddress(target);
  // Computed at most once, for the first rule with ranges; "" when the target is not an address, which no range holds.
  let bits: string | undefined;
  let blocked: "class" | "ranges" | null = null;
  for (const rule of d.http) {
    if (rule.origin !== r.url.origin || !rule.methods.includes(r.method) || !pathHasPrefix(r.url.pathname, rule.pathPrefix)) continue;
    if (rule.ranges !== null) {
      // A name not yet resolved has no address to place: the check made once it is resolved decides.
      if (target === null) return null;
      bits ??= addressBits(target) ?? "";
      const b = bits;
      if (rule.ranges.some((prefix) => b.startsWith(prefix))) return null;
      blocked = "ranges";
      continue;
    }
    if (targetClass === "public" || rule.allowPrivateNetwork || rule.literalAddress === target) return null;
    blocked ??= "class";
  }
  if (blocked === "ranges") {
    return { rule: "http.address", reason: `${r.url.host} resolves to ${target ?? "?"}, outside the address ranges the grant names` };
  }
  if (blocked === "class") {
    return {
      rule: "http.address",
      reason: `${r.url.host} resolves to ${target ?? "?"} (${targetClass}), which the grant does not name; set allowPrivateNetwork or grant the address itself`,
    };
  }
  return { rule: "http", reason: `does not grant ${r.method} ${r.url.origin}${r.url.pathname}` };
}

function dbDenial(d: CompiledDomains, r: Extract<CheckedRequest, { kind: "db" }>) {
  if (d.db === null) return { rule: "db", reason: "grants no database access" };
  let closest: string | null = null;
  for (const rule of d.db) {
    if (rule.model !== r.model || !rule.ops.includes(r.op)) continue;
    const problem = fieldProblem(rule, r);
    if (problem !== null) {
      closest = problem;
      continue;
    }
    const unscoped = unscopedPair(rule, r);
    if (unscoped !== null) {
      closest = `confines ${r.model} to rows where ${unscoped[0]} = ${JSON.stringify(unscoped[1])}`;
      continue;
    }
    if (rule.rows !== null && !r.rows.has(rule.rows.key)) {
      closest = `confines ${r.model} to rows where ${rule.rows.text}`;
      continue;
    }
    if (rule.maxRows !== null && (r.limit === null || r.limit > rule.maxRows)) {
      closest = `lets one call reach at most ${rule.maxRows} ${r.model} rows${r.limit === null ? ", and the request names no limit" : `, not ${r.limit}`}`;
      continue;
    }
    return null;
  }
  return { rule: "db", reason: closest ?? `does not grant ${r.op} on model ${r.model}` };
}

/** The first pair of the rule's scope that the request's scope does not pin, or null. */
function unscopedPair(rule: CompiledDbRule, r: Extract<CheckedRequest, { kind: "db" }>): readonly [string, Scalar] | null {
  for (const pair of rule.scope) {
    // One lookup: a request's scope holds no undefined value (each is a Scalar), so undefined means the key is not pinned.
    const pinned = r.scope.get(pair[0]);
    if (pinned === undefined || pinned !== pair[1]) return pair;
  }
  return null;
}

/** The action a rule takes on a field it reaches, "deny" when it does not reach it. */
function actionOn(rule: CompiledDbRule, field: string): string {
  if (rule.fields !== null && !rule.fields.has(field)) return "deny";
  return rule.actions?.get(field) ?? "allow";
}

const showAction = (a: string) => (a.startsWith("mask:") ? `masked as ${JSON.stringify(a.slice(5))}` : a === "hash" ? "hashed" : "redacted");

/** Why a rule does not let the request use its fields as it says it will, or null. */
function fieldProblem(rule: CompiledDbRule, r: Extract<CheckedRequest, { kind: "db" }>): string | null {
  for (const f of r.fields) {
    const action = actionOn(rule, f);
    if (action === "allow") continue;
    if (action === "deny") return `does not grant field ${r.model}.${f}`;
    return `grants ${r.model}.${f} only ${showAction(action)}: it cannot be read whole, filtered on, ordered by, aggregated or written`;
  }
  // Most requests name no views: their empty map is not iterated.
  if (r.views.size === 0) return null;
  for (const [f, view] of r.views) {
    const action = actionOn(rule, f);
    if (actionPermits(action, view)) continue;
    if (action === "deny") return `does not grant field ${r.model}.${f}`;
    return `grants ${r.model}.${f} only ${showAction(action)}, not ${showAction(view)}`;
  }
  return null;
}

function argMatches(pattern: ArgPattern, arg: string): boolean {
  if (typeof pattern === "string") return pattern === arg;
  if (Object.hasOwn(pattern, "prefix")) return arg.startsWith((pattern as { prefix: string }).prefix);
  return true;
}

function execDenial(d: CompiledDomains, r: Extract<CheckedRequest, { kind: "exec" }>) {
  if (d.exec === null) return { rule: "exec", reason: "grants no commands" };
  const [program, ...args] = r.argv;
  for (const rule of d.exec) {
    if (rule.program !== program) continue;
    if (rule.cwd !== null && !isWithin(r.cwd, rule.cwd)) continue;
    if (!r.env.every((name) => rule.env.has(name))) continue;
    const patterns = rule.args;
    if (patterns !== null) {
      if (args.length < patterns.length || (args.length > patterns.length && !rule.allowExtraArgs)) continue;
      if (!patterns.every((p, i) => argMatches(p, args[i] ?? ""))) continue;
    }
    return null;
  }
  return { rule: "exec", reason: `does not grant running ${JSON.stringify(r.argv)} in ${r.cwd}` };
}

/** Why a link's tenant condition refuses the request, or null. */
export function tenantDenial(c: CompiledConditions, r: CheckedRequest): string | null {
  if (c.tenants === null) return null;
  if (r.tenant === null) return `is confined to tenants ${[...c.tenants].join(", ")} and the request names no tenant`;
  return c.tenants.has(r.tenant) ? null : `is confined to tenants ${[...c.tenants].join(", ")}, not ${r.tenant}`;
}
