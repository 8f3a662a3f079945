import { z } from "zod";
import { canonicalJson } from "./content-hash.js";
import type { Scalar } from "./grant.js";
import { IDENTIFIER } from "./names.js";
import { isPrincipalRef, principalRefSchema, type RuleValue } from "./principal-refs.js";

/*
 * Row rules: conditions on a row, written in agentcap's structured filter
 * language (never SQL text), that a db rule confines its model to, such as
 * "status is not draft, or the owner is this user". A rule applies to every
 * read, update and delete (as a filter) and to every create (the new row
 * must satisfy it). Each link's rule is ANDed with the others': a request
 * names every rule it is confined by, and each link checks that its own is
 * among them, by canonical JSON text.
 */

/** Comparisons a row rule can make on one field. */
export const ROW_OPS = Object.freeze(["eq", "ne", "lt", "lte", "gt", "gte", "in", "startsWith", "contains"] as const);
export type RowOp = (typeof ROW_OPS)[number];

/**
 * A condition on a row: a comparison of one field with a value (`eq`/`ne`
 * with null mean IS NULL / IS NOT NULL; `in` takes a list), or all, any or
 * none of other conditions.
 */
export type RowRule =
  | { readonly field: string; readonly op: RowOp; readonly value: RuleValue | readonly Scalar[] }
  | { readonly all: readonly RowRule[] }
  | { readonly any: readonly RowRule[] }
  | { readonly not: RowRule };

/** How deep a rule may nest, and how many comparisons it may hold: rules are data, and their checks grow with them. */
const MAX_DEPTH = 8;
const MAX_COMPARISONS = 64;

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const comparison = z
  .strictObject({ field: z.string().regex(IDENTIFIER, "must be an identifier"), op: z.enum(ROW_OPS), value: z.union([scalar, principalRefSchema, z.array(scalar).min(1).max(100)]) })
  .superRefine((c, ctx) => {
    const list = Array.isArray(c.value);
    if (c.op === "in" && !list) ctx.addIssue({ code: "custom", message: "in takes a list of values" });
    if (c.op !== "in" && list) ctx.addIssue({ code: "custom", message: `${c.op} takes one value, not a list` });
    if (["lt", "lte", "gt", "gte", "startsWith", "contains"].includes(c.op) && c.value === null) ctx.addIssue({ code: "custom", message: `${c.op} cannot compare with null` });
    if (["startsWith", "contains"].includes(c.op) && typeof c.value !== "string" && !isPrincipalRef(c.value)) ctx.addIssue({ code: "custom", message: `${c.op} takes a string` });
    if (list && (c.value as readonly Scalar[]).includes(null)) ctx.addIssue({ code: "custom", message: "null never matches in a list" });
  });

/** The schema of a row rule, bounded in depth and size. */
export const rowRuleSchema: z.ZodType<RowRule> = z.lazy(() =>
  z.union([comparison, z.strictObject({ all: z.array(rowRuleSchema).min(1).max(16) }), z.strictObject({ any: z.array(rowRuleSchema).min(1).max(16) }), z.strictObject({ not: rowRuleSchema })]),
).superRefine((rule, ctx) => {
  const { depth, comparisons } = measure(rule);
  if (depth > MAX_DEPTH) ctx.addIssue({ code: "custom", message: `nests ${depth} deep; at most ${MAX_DEPTH}` });
  if (comparisons > MAX_COMPARISONS) ctx.addIssue({ code: "custom", message: `holds ${comparisons} comparisons; at most ${MAX_COMPARISONS}` });
});

/** The conditions a combining rule combines; read as own properties, so a polluted prototype cannot change a rule's kind. */
export function ruleChildren(rule: RowRule): readonly RowRule[] | null {
  if (Object.hasOwn(rule, "not")) return [(rule as { not: RowRule }).not];
  if (Object.hasOwn(rule, "all")) return (rule as { all: readonly RowRule[] }).all;
  if (Object.hasOwn(rule, "any")) return (rule as { any: readonly RowRule[] }).any;
  return null;
}

function measure(rule: RowRule): { depth: number; comparisons: number } {
  const children = ruleChildren(rule);
  if (children === null) return { depth: 1, comparisons: 1 };
  let depth = 0;
  let comparisons = 0;
  for (const c of children) {
    const m = measure(c);
    depth = Math.max(depth, m.depth);
    comparisons += m.comparisons;
  }
  return { depth: depth + 1, comparisons };
}

/** The text a rule is known by: its canonical JSON, equal for equal rules however they were written. */
export function ruleKey(rule: RowRule): string {
  return canonicalJson(rule);
}

const SHOWN_OPS: Readonly<Record<RowOp, string>> = { eq: "=", ne: "!=", lt: "<", lte: "<=", gt: ">", gte: ">=", in: "in", startsWith: "starts with", contains: "contains" };

/** A rule as a person reads it, for denials: `status != "draft" or ownerId = "u1"`. */
export function describeRule(rule: RowRule): string {
  const children = ruleChildren(rule);
  if (children === null) {
    const c = rule as Extract<RowRule, { field: string }>;
    return `${c.field} ${SHOWN_OPS[c.op]} ${isPrincipalRef(c.value) ? `principal.${c.value.principal}` : JSON.stringify(c.value)}`;
  }
  if (Object.hasOwn(rule, "not")) return `not (${describeRule(children[0] as RowRule)})`;
  const parts = children.map((r) => (ruleChildren(r) === null ? describeRule(r) : `(${describeRule(r)})`));
  return parts.join(Object.hasOwn(rule, "all") ? " and " : " or ");
}
