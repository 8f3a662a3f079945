import { z } from "zod";
import { InvalidInput } from "./errors.js";
import type { DbRule, Grant, Scalar } from "./grant.js";
import { deepFreeze } from "./plain-data.js";
import type { RowRule } from "./row-rules.js";

/*
 * Values a db rule can take from the principal it is minted for, so one
 * written policy confines every principal to its own rows: a scope
 * `{ ownerId: { principal: "user" } }`, a row rule comparing a field with
 * `{ principal: "tenant" }`. They are bound when a link is made (a root by
 * its mint, a narrowing, a token's link), to the chain's principal, so every
 * check and every statement sees plain values. A reference a link could not
 * bind (a grant parsed on its own) equals no value a request names, and no
 * resource can enforce it: it allows nothing.
 */

/** The principal's id ("user"), or its one tenant ("tenant"). */
export interface PrincipalRef {
  readonly principal: "user" | "tenant";
}

/** A value a scope pins a field to, or a row rule compares it with: given, or the principal's. */
export type RuleValue = Scalar | PrincipalRef;

export const principalRefSchema = z.strictObject({ principal: z.enum(["user", "tenant"]) });

/** Whether `value` is a principal reference (as the schemas accept it: an object with `principal` only). */
export function isPrincipalRef(value: unknown): value is PrincipalRef {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.hasOwn(value, "principal");
}

/** The principal a chain was minted for, as its mint recorded it. */
export interface PrincipalOf {
  readonly principal: string;
  readonly tenants: readonly string[];
}

function valueFor(ref: PrincipalRef, who: PrincipalOf, model: string): string {
  if (ref.principal === "user") return who.principal;
  const [only, ...more] = who.tenants;
  if (only === undefined || more.length > 0) {
    const held = who.tenants.length === 0 ? "no tenant" : `${who.tenants.length} tenants (${who.tenants.join(", ")})`;
    throw new InvalidInput(`the db rule for ${model} refers to principal.tenant, but principal ${who.principal} has ${held}; principal.tenant stands for a principal's one tenant`);
  }
  return only;
}

// Row rules are walked here by their own keys, not through row-rules.ts, whose schema this module's is part of.
function bindRows(rule: RowRule, who: PrincipalOf, model: string): RowRule {
  if (Object.hasOwn(rule, "not")) return { not: bindRows((rule as { not: RowRule }).not, who, model) };
  if (Object.hasOwn(rule, "all")) return { all: (rule as { all: readonly RowRule[] }).all.map((r) => bindRows(r, who, model)) };
  if (Object.hasOwn(rule, "any")) return { any: (rule as { any: readonly RowRule[] }).any.map((r) => bindRows(r, who, model)) };
  const c = rule as Extract<RowRule, { field: string }>;
  return isPrincipalRef(c.value) ? { field: c.field, op: c.op, value: valueFor(c.value, who, model) } : c;
}

function refersToPrincipal(rule: DbRule): boolean {
  const scope = Object.hasOwn(rule, "scope") ? rule.scope : undefined;
  if (scope !== undefined && Object.values(scope).some(isPrincipalRef)) return true;
  const rows = Object.hasOwn(rule, "rows") ? rule.rows : undefined;
  return rows !== undefined && JSON.stringify(rows).includes('"principal"');
}

function bindRule(rule: DbRule, who: PrincipalOf): DbRule {
  if (!refersToPrincipal(rule)) return rule;
  const out: Record<string, unknown> = { ...rule };
  if (rule.scope !== undefined) out.scope = Object.fromEntries(Object.entries(rule.scope).map(([k, v]) => [k, isPrincipalRef(v) ? valueFor(v, who, rule.model) : v]));
  if (rule.rows !== undefined) out.rows = bindRows(rule.rows, who, rule.model);
  return out as unknown as DbRule;
}

/**
 * `grant` (parsed) with every principal reference in its db rules replaced
 * by `who`'s value; the grant itself when it has none. Throws InvalidInput
 * when a reference has no value (principal.tenant for a principal with no
 * tenant, or several).
 */
export function bindPrincipal(grant: Grant, who: PrincipalOf): Grant {
  const db = Object.hasOwn(grant, "db") ? grant.db : undefined;
  if (db === undefined || !db.some(refersToPrincipal)) return grant;
  return deepFreeze({ ...grant, db: db.map((r) => bindRule(r, who)) });
}
