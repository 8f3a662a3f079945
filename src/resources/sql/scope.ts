import type { Capability, DbOp, DbRule, FieldView, LinkSummary, RowRule, Scalar } from "../../kernel/index.js";
import { actionKey, meetActions, ruleKey, viewOfKey } from "../../kernel/internal.js";

/*
 * The row scope a query is confined to, read from the capability's chain.
 * Every link that grants the model and operation contributes the scope of
 * the rule it grants them by; the union is what the query will be filtered
 * by and what the kernel request names, and the kernel then checks that
 * every link accepts it. This module only proposes: an answer that some link
 * does not accept is denied by the kernel, never acted on.
 */

/** One pinned field of the row scope, with the link that pins it (for denial details). */
export interface ScopeEntry {
  readonly field: string;
  readonly value: Scalar;
  readonly link: number;
  readonly linkId: string;
}

/** The scope a query is confined to, and the fields every link's chosen rule lets it reach (null: no link lists fields). */
export interface Confinement {
  readonly scope: readonly ScopeEntry[];
  readonly reachable: ReadonlySet<string> | null;
  /**
   * Fields some link shows other than whole, each with the most every link
   * allows of it (actionKey form: "deny", "redact", "hash", "mask:…"): where
   * links disagree, the meet of their actions.
   */
  readonly actions: ReadonlyMap<string, string>;
  /** The row rules of the chosen rules, each once, with the first link that sets it. */
  readonly rows: readonly RowEntry[];
  /** The least maxRows of the chosen rules: the most rows one call may reach; null when none sets one. */
  readonly maxRows: number | null;
  /** The totals of rows read that links of the chain set on their chosen rules (maxRowsRead), each with its link. */
  readonly rowBudgets: readonly RowBudget[];
}

/** A link's total of rows it and its descendants may read of one model. */
export interface RowBudget {
  readonly max: number;
  readonly link: number;
  readonly linkId: string;
}

/** One row rule the query is confined by, with the link that sets it (for denial details). */
export interface RowEntry {
  readonly rule: RowRule;
  readonly link: number;
  readonly linkId: string;
}

/** How a query uses its fields, as the kernel request names them. */
export interface FieldUse {
  /** Fields used whole: returned as they are, filtered on, ordered by, written. */
  readonly fields: string[];
  /** Fields returned only in a view, and which. */
  readonly views: Record<string, FieldView>;
}

/**
 * The request's fields for a query that returns `returned` and otherwise uses
 * `used`: a returned field some link shows other than whole is asked for in
 * that view; everything else, a denied field too (so the kernel names it in
 * its denial), is asked for whole.
 */
export function fieldUse(confinement: Confinement, returned: readonly string[], used: readonly string[]): FieldUse {
  const fields: string[] = [];
  const views: Record<string, FieldView> = {};
  for (const f of returned) {
    const action = confinement.actions.get(f);
    if (action === undefined || action === "deny" || used.includes(f)) fields.push(f);
    else views[f] = viewOfKey(action);
  }
  for (const f of used) if (!fields.includes(f)) fields.push(f);
  return { fields, views };
}

// Grants are read as own properties, as the kernel reads them, so a polluted Object.prototype proposes nothing.
const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);
const fieldsOf = (rule: DbRule) => own(rule, "fields");
const scopeOf = (rule: DbRule) => Object.entries(own(rule, "scope") ?? {});

const covers = (rule: DbRule, fields: readonly string[]) => {
  const granted = fieldsOf(rule);
  const actions = own(rule, "fieldActions");
  return fields.every((f) => (granted === undefined || granted.includes(f)) && (actions === undefined || !Object.hasOwn(actions, f) || actions[f] !== "deny"));
};

const consistent = (rule: DbRule, scope: ReadonlyMap<string, ScopeEntry>) =>
  scopeOf(rule).every(([k, v]) => {
    const pinned = scope.get(k);
    return pinned === undefined || pinned.value === v;
  });

/**
 * The confinement of a query on `model` with operation `op` naming `fields`.
 * Where one link grants the model by several rules, the first that allows the
 * fields and agrees with the scope gathered so far is used: a query runs in
 * one row scope, never in the union of several.
 */
export function confinementOf(cap: Capability, model: string, op: DbOp, fields: readonly string[]): Confinement {
  return confinementOfLineage(cap.lineage, model, op, fields);
}

/** The same, from a lineage given as data: for code that sees a capability's links but holds no capability, such as a tool's needs. */
export function confinementOfLineage(lineage: readonly LinkSummary[], model: string, op: DbOp, fields: readonly string[]): Confinement {
  const scope = new Map<string, ScopeEntry>();
  let reachable: Set<string> | null = null;
  const actions = new Map<string, string>();
  const rows = new Map<string, RowEntry>();
  let maxRows: number | null = null;
  const rowBudgets: RowBudget[] = [];
  lineage.forEach((link, index) => {
    const rules = ((link.grant === null ? undefined : own(link.grant, "db")) ?? []).filter((r) => r.model === model && r.ops.includes(op));
    const rule = rules.find((r) => covers(r, fields) && consistent(r, scope)) ?? rules.find((r) => covers(r, fields)) ?? rules[0];
    if (rule === undefined) return; // This link grants nothing here; the kernel will say so.
    for (const [field, value] of scopeOf(rule)) {
      if (!scope.has(field)) scope.set(field, { field, value, link: index, linkId: link.id });
    }
    const listed = fieldsOf(rule);
    if (listed !== undefined) {
      const granted = new Set(listed);
      reachable = reachable === null ? granted : new Set([...reachable].filter((f) => granted.has(f)));
    }
    const max = own(rule, "maxRows");
    if (max !== undefined) maxRows = maxRows === null ? max : Math.min(maxRows, max);
    const total = own(rule, "maxRowsRead");
    if (total !== undefined) rowBudgets.push({ max: total, link: index, linkId: link.id });
    const rowRule = own(rule, "rows");
    if (rowRule !== undefined) {
      const key = ruleKey(rowRule);
      if (!rows.has(key)) rows.set(key, { rule: rowRule, link: index, linkId: link.id });
    }
    for (const [field, action] of Object.entries(own(rule, "fieldActions") ?? {})) {
      actions.set(field, meetActions(actions.get(field) ?? "allow", actionKey(action)));
    }
  });
  for (const [field, action] of actions) if (action === "allow") actions.delete(field);
  return { scope: [...scope.values()], reachable, actions, rows: [...rows.values()], maxRows, rowBudgets };
}
