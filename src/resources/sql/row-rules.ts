import type { RowRule, Scalar } from "../../kernel/index.js";
import { ruleChildren } from "../../kernel/internal.js";
import type { Condition } from "./query.js";
import { valueProblem, type Field, type Model } from "./schema.js";

/*
 * A capability's row rules, checked against the schema and put in the form
 * the compiler and the create check read. The values are the grant's, bound
 * as parameters like every other value.
 */

/** A row rule over a model's fields: a comparison binding `values`, or a combination. */
export type RuleNode =
  | { readonly kind: "compare"; readonly condition: Condition; readonly values: readonly Scalar[] }
  | { readonly kind: "all" | "any"; readonly children: readonly RuleNode[] }
  | { readonly kind: "not"; readonly child: RuleNode };

/** A rule the schema cannot express: it cannot be enforced, so the call is refused. */
export class UnenforceableRule extends Error {}

function comparison(model: Model, rule: Extract<RowRule, { field: string }>): RuleNode {
  const field = model.byName.get(rule.field);
  if (field === undefined) throw new UnenforceableRule(`${model.name} has no field ${rule.field}`);
  const list = Array.isArray(rule.value) ? (rule.value as readonly Scalar[]) : [rule.value as Scalar];
  for (const v of list) {
    const problem = valueProblem(field, v);
    if (problem !== null && !(v === null && (rule.op === "eq" || rule.op === "ne"))) throw new UnenforceableRule(problem);
  }
  if ((rule.op === "startsWith" || rule.op === "contains") && field.type !== "text") throw new UnenforceableRule(`${field.name} is not a text field`);
  if ((rule.op === "eq" || rule.op === "ne") && rule.value === null) {
    return { kind: "compare", condition: { field, op: rule.op === "eq" ? "isNull" : "notNull", arity: 0 }, values: [] };
  }
  return { kind: "compare", condition: { field, op: rule.op, arity: list.length }, values: list };
}

/** The rule over `model`'s fields; throws UnenforceableRule naming what the schema lacks. */
export function ruleNode(model: Model, rule: RowRule): RuleNode {
  const children = ruleChildren(rule);
  if (children === null) return comparison(model, rule as Extract<RowRule, { field: string }>);
  if (Object.hasOwn(rule, "not")) return { kind: "not", child: ruleNode(model, children[0] as RowRule) };
  return { kind: Object.hasOwn(rule, "all") ? "all" : "any", children: children.map((c) => ruleNode(model, c)) };
}

/** The values a rule binds, in the order the compiler places its parameters. */
export function ruleValues(node: RuleNode, out: Scalar[] = []): Scalar[] {
  if (node.kind === "compare") out.push(...node.values);
  else if (node.kind === "not") ruleValues(node.child, out);
  else for (const c of node.children) ruleValues(c, out);
  return out;
}

/** The fields a rule names. */
export function ruleFields(node: RuleNode, out: Set<Field> = new Set()): Set<Field> {
  if (node.kind === "compare") out.add(node.condition.field);
  else if (node.kind === "not") ruleFields(node.child, out);
  else for (const c of node.children) ruleFields(c, out);
  return out;
}

const ORDER_OPS: ReadonlySet<string> = new Set(["lt", "lte", "gt", "gte"]);

/**
 * A text field the rule compares by order (<, <=, >, >=), or null. Text is
 * ordered by the database's collation (Postgres: the column's or the
 * database's locale; SQLite: the column's collating function), which a check
 * made here cannot know, so a new row cannot be checked against such a rule.
 */
export function orderedText(node: RuleNode): Field | null {
  if (node.kind === "compare") return node.condition.field.type === "text" && ORDER_OPS.has(node.condition.op) ? node.condition.field : null;
  if (node.kind === "not") return orderedText(node.child);
  for (const c of node.children) {
    const found = orderedText(c);
    if (found !== null) return found;
  }
  return null;
}

function compare(op: Condition["op"], value: Scalar, wanted: readonly Scalar[]): boolean {
  const [w] = wanted;
  if (op === "isNull") return value === null;
  if (op === "notNull") return value !== null;
  // As in SQL, a comparison with NULL is never true.
  if (value === null) return false;
  switch (op) {
    case "eq":
      return value === w;
    case "ne":
      return value !== w;
    case "lt":
      return (value as number) < (w as number);
    case "lte":
      return (value as number) <= (w as number);
    case "gt":
      return (value as number) > (w as number);
    case "gte":
      return (value as number) >= (w as number);
    case "in":
      return wanted.includes(value);
    case "startsWith":
      return typeof value === "string" && value.startsWith(w as string);
    case "contains":
      return typeof value === "string" && value.includes(w as string);
  }
}

/**
 * Whether a new row holding `values` satisfies the rule; null when the rule
 * names a field the row does not give, whose stored value (a default) only
 * the database knows.
 */
export function rowSatisfies(node: RuleNode, values: ReadonlyMap<Field, Scalar>): boolean | null {
  switch (node.kind) {
    case "compare": {
      const { field, op } = node.condition;
      if (!values.has(field)) return null;
      return compare(op, values.get(field) as Scalar, node.values);
    }
    case "not": {
      const inner = rowSatisfies(node.child, values);
      return inner === null ? null : !inner;
    }
    case "all":
    case "any": {
      let unknown = false;
      for (const c of node.children) {
        const v = rowSatisfies(c, values);
        if (v === null) unknown = true;
        else if (v === (node.kind === "any")) return v;
      }
      return unknown ? null : node.kind === "all";
    }
  }
}
