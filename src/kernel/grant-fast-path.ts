import { types } from "node:util";
import { addressRangeProblem } from "./address.js";
import { absolutePathProblem, originProblem } from "./canonical-forms.js";
import type { ApprovalRule, ArgPattern, DbRule, ExecRule, FsRule, Grant, HttpRule, LinkConditions, RateRule, RevokeRule, Scalar } from "./grant.js";
import { MASK_PATTERN } from "./field-actions.js";
import { ENV_NAME, isIdentifierText } from "./names.js";
import * as words from "./vocabulary.js";

/*
 * Every narrowing validates its grant, and the zod schemas cost tens of
 * microseconds for an ordinary one. This module accepts the well-formed
 * grants by hand, building the same frozen copy the schemas would, and
 * returns null for anything else (or anything unusual: a Proxy, an object
 * with a prototype of its own, a very large grant), so the schemas stay the single judge of
 * what is rejected and how the error reads. It must never accept what the
 * schemas reject, nor build anything different; a property test compares
 * the two.
 */

type Fields = Record<string, unknown>;

/**
 * The prototype of the copies the checks read: it inherits nothing, so a key
 * a grant leaves out reads as undefined even when Object.prototype has been
 * polluted with it. Not null itself: such copies would start in V8's slow
 * dictionary mode.
 */
const READ_COPY: object = Object.freeze(Object.create(null) as object);

const MAX_LIST = 1024;
/** Values read before giving up and leaving the grant to the schema (whose own limit is far higher). */
const MAX_VALUES = 4096;

const FS_OPS: ReadonlySet<unknown> = new Set(words.FS_OPS);
const HTTP_METHODS: ReadonlySet<unknown> = new Set(words.HTTP_METHODS);
const DB_OPS: ReadonlySet<unknown> = new Set(words.DB_OPS);
const AUDIT_OPS: ReadonlySet<unknown> = new Set(words.AUDIT_OPS);
const FIELD_ACTIONS: ReadonlySet<unknown> = new Set(["allow", "hash", "redact", "deny"]);
const REVOCATION_TARGETS: ReadonlySet<unknown> = new Set(words.REVOCATION_TARGETS);
const REQUEST_ACTIONS: ReadonlySet<unknown> = new Set(words.REQUEST_ACTIONS);
const AUTO_SET: ReadonlySet<unknown> = new Set(["principal.user", "principal.tenant"]);
const { MAX_QUORUM } = words;
const MAX_RATE_WINDOW = 31 * 24 * 3600;

type KeyTest = (key: string) => boolean;
const only = (...keys: string[]): KeyTest => {
  const allowed = new Set(keys);
  return (key) => allowed.has(key);
};
const CONDITION_KEYS = ["expiresAt", "maxUses", "budget", "tenants", "rates"];
const KEYS = {
  conditions: only(...CONDITION_KEYS),
  grant: only(...CONDITION_KEYS, "tools", "fs", "http", "db", "exec", "revoke", "audit", "approval"),
  budget: only("calls", "cost"),
  rate: only("per", "calls", "cost", "tools", "actions"),
  fs: only("path", "ops", "subtree"),
  http: only("origin", "methods", "pathPrefix", "allowPrivateNetwork", "addresses"),
  db: only("model", "ops", "fields", "scope", "fieldActions", "rows", "immutable", "required", "requireFilter", "requireReason", "autoSet", "maxRows", "maxRowsRead"),
  comparison: only("field", "op", "value"),
  all: only("all"),
  any: only("any"),
  not: only("not"),
  scope: isIdentifierText,
  mask: only("mask"),
  exec: only("program", "args", "allowExtraArgs", "cwd", "env"),
  argPattern: only("prefix", "any"),
  revoke: only("target", "ids"),
  // Argument patterns (`input`) are rare: a rule with them is left to the schema.
  approval: only("tools", "actions", "approvers", "quorum"),
};

/** Signals "leave this grant to the schema"; one instance, made once, and it never escapes this module. */
class GiveUp extends Error {}
const GIVE_UP = new GiveUp("left to the schema");

class Reader {
  values = 0;

  /** The own enumerable properties of a plain object whose keys all pass `allowed`, each read once. */
  object(v: unknown, allowed: KeyTest): Fields {
    if (typeof v !== "object" || v === null || Array.isArray(v) || types.isProxy(v)) throw GIVE_UP;
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) throw GIVE_UP;
    const out = Object.create(READ_COPY) as Fields;
    for (const key of Object.keys(v)) {
      if (!allowed(key)) throw GIVE_UP;
      // Read once into the copy that is checked, so a getter cannot show the check one value and the grant another.
      const value: unknown = (v as Fields)[key];
      if (value === undefined) throw GIVE_UP;
      this.count();
      out[key] = value;
    }
    return out;
  }

  /** A frozen copy of a plain array of `min` to MAX_LIST items, each read once and checked and copied by `item`. */
  list<T>(v: unknown, min: number, item: (x: unknown) => T): readonly T[] {
    if (!Array.isArray(v) || types.isProxy(v) || Object.getPrototypeOf(v) !== Array.prototype) throw GIVE_UP;
    const length = v.length;
    if (length < min || length > MAX_LIST) throw GIVE_UP;
    const out = new Array<T>(length);
    for (let i = 0; i < length; i++) {
      this.count();
      // A hole reads as undefined, which no item accepts.
      out[i] = item(v[i]);
    }
    return Object.freeze(out);
  }

  private count(): void {
    if (++this.values > MAX_VALUES) throw GIVE_UP;
  }
}

/** Origins already found canonical: a grant names a few, over and over (each narrowing of a session repeats them). */
const canonicalOrigins = new Set<string>();

function canonicalOrigin(origin: string): boolean {
  if (canonicalOrigins.has(origin)) return true;
  if (originProblem(origin) !== undefined) return false;
  if (canonicalOrigins.size >= 1024) canonicalOrigins.clear();
  canonicalOrigins.add(origin);
  return true;
}

/** Paths already found canonical, for the same reason. */
const canonicalPaths = new Set<string>();

function canonicalPath(p: string): boolean {
  if (canonicalPaths.has(p)) return true;
  if (absolutePathProblem(p) !== undefined) return false;
  if (canonicalPaths.size >= 1024) canonicalPaths.clear();
  canonicalPaths.add(p);
  return true;
}

function check<T>(ok: boolean, value: T): T {
  if (!ok) throw GIVE_UP;
  return value;
}

const isFinite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const safeInteger = (x: unknown, min: number): number => check(Number.isSafeInteger(x) && (x as number) >= min, x as number);
const nonNegative = (x: unknown): number => check(isFinite(x) && x >= 0, x as number);
const bool = (x: unknown): boolean => check(typeof x === "boolean", x as boolean);
const name = (x: unknown): string => check(typeof x === "string" && x.length >= 1 && x.length <= 256 && !x.includes("\0"), x as string);
const identifier = (x: unknown): string => check(typeof x === "string" && isIdentifierText(x), x as string);
const absolutePath = (x: unknown): string => check(typeof x === "string" && canonicalPath(x), x as string);
const member = (set: ReadonlySet<unknown>) => (x: unknown): never => check(set.has(x), x as never);
const scalar = (x: unknown): Scalar => check(x === null || typeof x === "string" || typeof x === "boolean" || isFinite(x), x as Scalar);

/** Copies `from[key]` through `read` into `to` when present. */
function optional(to: Fields, from: Fields, key: string, read: (x: unknown) => unknown): void {
  if (Object.hasOwn(from, key)) to[key] = read(from[key]);
}

function conditionsInto(r: Reader, out: Fields, v: Fields): void {
  optional(out, v, "expiresAt", (x) => safeInteger(x, 0));
  optional(out, v, "maxUses", (x) => safeInteger(x, 1));
  optional(out, v, "budget", (x) => {
    const b = r.object(x, KEYS.budget);
    const budget: Fields = {};
    optional(budget, b, "calls", (y) => safeInteger(y, 0));
    optional(budget, b, "cost", nonNegative);
    return Object.freeze(budget);
  });
  optional(out, v, "tenants", (x) => r.list(x, 1, name));
  optional(out, v, "rates", (x) => {
    const rates = r.list(x, 1, (y) => rateRule(r, y));
    return check(rates.length <= 16, rates);
  });
}

function rateRule(r: Reader, x: unknown): RateRule {
  const v = r.object(x, KEYS.rate);
  const out: Fields = { per: check(safeInteger(v.per, 1) <= MAX_RATE_WINDOW, v.per) };
  optional(out, v, "calls", (y) => safeInteger(y, 0));
  optional(out, v, "cost", nonNegative);
  optional(out, v, "tools", (t) => r.list(t, 1, name));
  optional(out, v, "actions", (a) => r.list(a, 1, member(REQUEST_ACTIONS)));
  // The schema words the refusal of a rate that limits nothing.
  if (out.calls === undefined && out.cost === undefined) throw GIVE_UP;
  return Object.freeze(out) as unknown as RateRule;
}

function fsRule(r: Reader, x: unknown): FsRule {
  const v = r.object(x, KEYS.fs);
  const out: Fields = { path: absolutePath(v.path), ops: r.list(v.ops, 1, member(FS_OPS)) };
  optional(out, v, "subtree", bool);
  return Object.freeze(out) as unknown as FsRule;
}

function httpRule(r: Reader, x: unknown): HttpRule {
  const v = r.object(x, KEYS.http);
  const origin = check(typeof v.origin === "string" && canonicalOrigin(v.origin), v.origin as string);
  const out: Fields = { origin, methods: r.list(v.methods, 1, member(HTTP_METHODS)) };
  optional(out, v, "pathPrefix", (p) => check(typeof p === "string" && p.startsWith("/"), p as string));
  optional(out, v, "allowPrivateNetwork", bool);
  optional(out, v, "addresses", (a) => r.list(a, 1, (y) => check(typeof y === "string" && addressRangeProblem(y) === undefined, y as string)));
  if (Object.hasOwn(out, "addresses") && Object.hasOwn(out, "allowPrivateNetwork")) throw GIVE_UP;
  return Object.freeze(out) as unknown as HttpRule;
}

function fieldAction(r: Reader, x: unknown): unknown {
  if (typeof x === "string") return member(FIELD_ACTIONS)(x);
  const v = r.object(x, KEYS.mask);
  return Object.freeze({ mask: check(typeof v.mask === "string" && MASK_PATTERN.test(v.mask), v.mask as string) });
}

const ROW_OPS: ReadonlySet<unknown> = new Set(["eq", "ne", "lt", "lte", "gt", "gte", "in", "startsWith", "contains"]);
const ORDERED = new Set(["lt", "lte", "gt", "gte"]);

/** A row rule the schema would accept unchanged (at most 4 deep, 16 comparisons: well inside the schema's own bounds), with its depth and comparisons counted. */
function rowRule(r: Reader, x: unknown, depth: number, count: { comparisons: number }): unknown {
  if (depth > 4) throw GIVE_UP;
  if (typeof x !== "object" || x === null) throw GIVE_UP;
  const keys = Object.keys(x);
  if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any")) {
    const v = r.object(x, keys[0] === "all" ? KEYS.all : KEYS.any);
    const list = r.list(v[keys[0]], 1, (y) => rowRule(r, y, depth + 1, count));
    if (list.length > 16) throw GIVE_UP;
    return Object.freeze({ [keys[0]]: list });
  }
  if (keys.length === 1 && keys[0] === "not") return Object.freeze({ not: rowRule(r, r.object(x, KEYS.not).not, depth + 1, count) });
  const v = r.object(x, KEYS.comparison);
  if (++count.comparisons > 16) throw GIVE_UP;
  const op = member(ROW_OPS)(v.op) as string;
  let value: unknown;
  if (op === "in") {
    value = r.list(v.value, 1, (y) => scalar(check(y !== null, y)));
    if ((value as unknown[]).length > 100) throw GIVE_UP;
  } else {
    value = scalar(v.value);
    if ((ORDERED.has(op) && value === null) || ((op === "startsWith" || op === "contains") && typeof value !== "string")) throw GIVE_UP;
  }
  return Object.freeze({ field: identifier(v.field), op, value });
}

function dbRule(r: Reader, x: unknown): DbRule {
  const v = r.object(x, KEYS.db);
  const out: Fields = { model: identifier(v.model), ops: r.list(v.ops, 1, member(DB_OPS)) };
  optional(out, v, "fields", (f) => r.list(f, 0, identifier));
  optional(out, v, "scope", (s) => {
    const scope = r.object(s, KEYS.scope);
    for (const key of Object.keys(scope)) scalar(scope[key]);
    return Object.freeze({ ...scope });
  });
  optional(out, v, "fieldActions", (a) => {
    const actions = r.object(a, KEYS.scope);
    for (const key of Object.keys(actions)) actions[key] = fieldAction(r, actions[key]);
    return Object.freeze({ ...actions });
  });
  optional(out, v, "rows", (x) => rowRule(r, x, 1, { comparisons: 0 }));
  optional(out, v, "immutable", (f) => r.list(f, 0, identifier));
  optional(out, v, "required", (f) => r.list(f, 0, identifier));
  optional(out, v, "requireFilter", bool);
  optional(out, v, "requireReason", bool);
  optional(out, v, "autoSet", (a) => {
    const sources = r.object(a, KEYS.scope);
    for (const key of Object.keys(sources)) check(AUTO_SET.has(sources[key]), sources[key]);
    return Object.freeze({ ...sources });
  });
  optional(out, v, "maxRows", (x) => safeInteger(x, 1));
  optional(out, v, "maxRowsRead", (x) => safeInteger(x, 1));
  return Object.freeze(out) as unknown as DbRule;
}

function argPattern(r: Reader, x: unknown): ArgPattern {
  if (typeof x === "string") return x;
  const v = r.object(x, KEYS.argPattern);
  const keys = Object.keys(v);
  if (keys.length !== 1) throw GIVE_UP;
  if (keys[0] === "prefix") return Object.freeze({ prefix: check(typeof v.prefix === "string", v.prefix as string) });
  return Object.freeze({ any: check(v.any === true, true as const) });
}

function execRule(r: Reader, x: unknown): ExecRule {
  const v = r.object(x, KEYS.exec);
  const out: Fields = { program: absolutePath(v.program) };
  optional(out, v, "args", (a) => r.list(a, 0, (y) => argPattern(r, y)));
  optional(out, v, "allowExtraArgs", bool);
  optional(out, v, "cwd", absolutePath);
  optional(out, v, "env", (e) => r.list(e, 0, (y) => check(typeof y === "string" && ENV_NAME.test(y), y as string)));
  return Object.freeze(out) as unknown as ExecRule;
}

function revokeRule(r: Reader, x: unknown): RevokeRule {
  const v = r.object(x, KEYS.revoke);
  const out: Fields = { target: member(REVOCATION_TARGETS)(v.target) };
  // Any string of 1 to 256 characters names a target: revoking by a name needs no other shape.
  optional(out, v, "ids", (i) => r.list(i, 1, (y) => check(typeof y === "string" && y.length >= 1 && y.length <= 256, y as string)));
  return Object.freeze(out) as unknown as RevokeRule;
}

function approvalRule(r: Reader, x: unknown): ApprovalRule {
  const v = r.object(x, KEYS.approval);
  const out: Fields = {};
  optional(out, v, "tools", (t) => r.list(t, 1, name));
  optional(out, v, "actions", (a) => r.list(a, 1, member(REQUEST_ACTIONS)));
  const approvers = r.list(v.approvers, 1, name);
  out.approvers = approvers;
  optional(out, v, "quorum", (q) => check(safeInteger(q, 1) <= MAX_QUORUM, q as number));
  // The schema words these refusals: a rule that names nothing to approve, or more approvers than it could ever find.
  if (out.tools === undefined && out.actions === undefined) throw GIVE_UP;
  if (((out.quorum as number | undefined) ?? 1) > approvers.length && !approvers.some((a) => a.startsWith("role:"))) throw GIVE_UP;
  return Object.freeze(out) as unknown as ApprovalRule;
}

function attempt<T>(parse: (r: Reader) => T): T | null {
  try {
    return parse(new Reader());
  } catch (e) {
    if (e === GIVE_UP) return null;
    throw e;
  }
}

/** The frozen grant when `value` is a well-formed, ordinary grant; null means "ask the schema". */
export function fastParseGrant(value: unknown): Grant | null {
  return attempt((r) => {
    const v = r.object(value, KEYS.grant);
    const out: Fields = {};
    conditionsInto(r, out, v);
    optional(out, v, "tools", (x) => r.list(x, 0, name));
    optional(out, v, "fs", (x) => r.list(x, 0, (y) => fsRule(r, y)));
    optional(out, v, "http", (x) => r.list(x, 0, (y) => httpRule(r, y)));
    optional(out, v, "db", (x) => r.list(x, 0, (y) => dbRule(r, y)));
    optional(out, v, "exec", (x) => r.list(x, 0, (y) => execRule(r, y)));
    optional(out, v, "revoke", (x) => r.list(x, 0, (y) => revokeRule(r, y)));
    optional(out, v, "audit", (x) => r.list(x, 1, member(AUDIT_OPS)));
    optional(out, v, "approval", (x) => r.list(x, 0, (y) => approvalRule(r, y)));
    return Object.freeze(out);
  });
}

/** The frozen conditions when `value` is well-formed; null means "ask the schema". */
export function fastParseConditions(value: unknown): LinkConditions | null {
  return attempt((r) => {
    const out: Fields = {};
    conditionsInto(r, out, r.object(value, KEYS.conditions));
    return Object.freeze(out);
  });
}
