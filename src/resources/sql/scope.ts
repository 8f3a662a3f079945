import type { AutoSetSource, Capability, DbOp, DbRule, FieldView, IncludeRule, LinkSummary, RowRule, Scalar } from "../../kernel/index.js";
import { actionKey, meetActions, ruleChildren, ruleKey, viewOfKey } from "../../kernel/internal.js";

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
  /** Fields an update may not set (the chosen rules' `immutable`), each with the first link that names it. */
  readonly immutable: ReadonlyMap<string, LinkAt>;
  /** Fields a create must give, not null (the chosen rules' `required`), each with the first link that names it. */
  readonly required: ReadonlyMap<string, LinkAt>;
  /** The first link whose chosen rule sets requireFilter, or null. */
  readonly requireFilter: LinkAt | null;
  /** The first link whose chosen rule sets requireReason, or null. */
  readonly requireReason: LinkAt | null;
  /** Fields set from the principal (the chosen rules' `autoSet`), each with its source and the first link that names it. */
  readonly autoSet: ReadonlyMap<string, AutoSetEntry>;
  /** The totals of rows read that links of the chain set on their chosen rules (maxRowsRead), each with its link. */
  readonly rowBudgets: readonly RowBudget[];
  /** What each link's chosen rule lets a read include, in chain order. */
  readonly includes: readonly IncludeGrant[];
}

/** What one link's chosen rule lets a read of its model include: relations by name (undefined: none), nested at most `maxDepth` levels. */
export interface IncludeGrant extends LinkAt {
  readonly include: Readonly<Record<string, IncludeRule>> | undefined;
  readonly maxDepth: number;
}

/** A link of the chain, for denial details. */
export interface LinkAt {
  readonly link: number;
  readonly linkId: string;
}

/** An auto-set field's source, with the link that sets it. */
export interface AutoSetEntry extends LinkAt {
  readonly source: AutoSetSource;
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

/**
 * One relation a read includes, as the choice of rules weighs it: its name,
 * the levels of includes at and below it (1: it includes nothing itself),
 * and the fields of the included model it names (those relating rows left out).
 */
export interface IncludeDemand {
  readonly name: string;
  readonly height: number;
  readonly fields: readonly string[];
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
// Principal references are bound to plain values when a link is made; one left unbound is an object, which no field's value check accepts, so the call is refused.
const scopeOf = (rule: DbRule) => Object.entries(own(rule, "scope") ?? {}) as [string, Scalar][];

const covers = (rule: DbRule, fields: readonly string[]) => {
  const granted = fieldsOf(rule);
  const actions = own(rule, "fieldActions");
  return fields.every((f) => (granted === undefined || granted.includes(f)) && (actions === undefined || !Object.hasOwn(actions, f) || actions[f] !== "deny"));
};

/** Whether `rule` lets a read include every relation of `demands`, as deep and with the fields each names (as ./include-grants.ts decides it per link). */
const admits = (rule: DbRule, demands: readonly IncludeDemand[]) => {
  if (demands.length === 0) return true;
  const include = own(rule, "include");
  const depth = own(rule, "maxIncludeDepth") ?? 1;
  return demands.every((d) => {
    if (include === undefined || !Object.hasOwn(include, d.name)) return false;
    const listed = own(include[d.name] as IncludeRule, "fields");
    return d.height <= depth && (listed === undefined || d.fields.every((f) => listed.includes(f)));
  });
};

/** Whether `rule` pins no field to a value other than `scope`'s. */
const agrees = (rule: DbRule, scope: ReadonlyMap<string, Scalar>) =>
  scopeOf(rule).every(([k, v]) => {
    const pinned = scope.get(k);
    return pinned === undefined || pinned === v;
  });

/**
 * Whether a row whose fields `pins` holds satisfies `rule`: null when the
 * pinned values do not decide it. Text is ordered by the database's
 * collation, so an order comparison on text decides nothing here.
 */
function verdict(rule: RowRule, pins: ReadonlyMap<string, Scalar>): boolean | null {
  const children = ruleChildren(rule);
  if (children === null) {
    const { field, op, value } = rule as Extract<RowRule, { field: string }>;
    if (!pins.has(field)) return null;
    const v = pins.get(field) as Scalar;
    if (op === "eq") return v === value;
    if (op === "ne") return value === null ? v !== null : v !== null && v !== value;
    if (op === "in") return v !== null && (value as readonly Scalar[]).includes(v);
    if (typeof v !== "number" || typeof value !== "number") return null;
    return op === "lt" ? v < value : op === "lte" ? v <= value : op === "gt" ? v > value : op === "gte" ? v >= value : null;
  }
  const results = children.map((c) => verdict(c, pins));
  if (Object.hasOwn(rule, "not")) return results[0] === null || results[0] === undefined ? null : !results[0];
  const any = Object.hasOwn(rule, "any");
  if (results.includes(any)) return any;
  return results.includes(null) ? null : !any;
}

/** How many rule combinations the choice below tries before settling for the first rule of each link. */
const MAX_CHOICES = 4096;

/**
 * One rule per link granting `model` and `op`, chosen so that the query
 * runs in the scope of rules that all allow it: each covers the fields,
 * pins no field to a value other than the query's own equality filters
 * (`pins`) or another chosen rule, and has a row rule those filters do not
 * rule out. Rules that cost the query no rows (no row rule, or one its
 * filters already satisfy) are preferred, then those pinning fewer fields
 * its filters leave open, then those with a higher maxRows, then earlier
 * rules. A read's
 * includes (`demands`) are part of what a rule must allow, so a read one
 * rule lets include a relation is not refused because another rule of the
 * same link was chosen first; the chosen rule alone then decides them. When
 * no combination fits, the first rule covering the fields and includes (or
 * the fields, or the first) of each link is taken, and the denial names
 * what does not fit.
 */
function chooseRules(candidates: readonly (readonly DbRule[])[], fields: readonly string[], pins: ReadonlyMap<string, Scalar>, demands: readonly IncludeDemand[]): (DbRule | undefined)[] {
  const rank = (rule: DbRule) => {
    const rows = own(rule, "rows");
    const holds = rows === undefined ? true : verdict(rows, pins);
    return holds === true ? 0 : holds === null ? 1 : 2;
  };
  // Among rules alike in that, those pinning fewer fields the query leaves open, then those letting a call reach more rows, cost it fewer rows.
  const extraPins = (rule: DbRule) => scopeOf(rule).filter(([k]) => !pins.has(k)).length;
  const reach = (rule: DbRule) => own(rule, "maxRows") ?? Number.MAX_SAFE_INTEGER;
  const ranked = candidates.map((rules) =>
    rules
      .map((rule) => ({ rule, rank: rank(rule), pins: extraPins(rule), reach: reach(rule) }))
      .filter((r) => r.rank < 2)
      .sort((a, b) => a.rank - b.rank || a.pins - b.pins || b.reach - a.reach)
      .map((r) => r.rule),
  );
  const chosen: DbRule[] = [];
  let steps = 0;
  const search = (i: number, scope: ReadonlyMap<string, Scalar>): boolean => {
    if (i === ranked.length) return true;
    for (const rule of ranked[i] as readonly DbRule[]) {
      if (++steps > MAX_CHOICES) return false;
      if (!covers(rule, fields) || !agrees(rule, scope) || !admits(rule, demands)) continue;
      const next = new Map(scope);
      for (const [k, v] of scopeOf(rule)) next.set(k, v);
      chosen[i] = rule;
      if (search(i + 1, next)) return true;
    }
    return false;
  };
  if (search(0, pins)) return chosen;
  // The closest fit, so the denial names what is missing: fields and includes, then fields and the relations' names, then fields.
  const names = demands.map((d) => ({ name: d.name, height: 1, fields: [] }));
  return candidates.map(
    (rules) => rules.find((r) => covers(r, fields) && admits(r, demands)) ?? rules.find((r) => covers(r, fields) && admits(r, names)) ?? rules.find((r) => covers(r, fields)) ?? rules[0],
  );
}

/**
 * The confinement of a query on `model` with operation `op` naming `fields`
 * and pinning fields to values by its equality filters (a create: by the
 * values it writes), and for a read including relations, `demands`. Where a
 * link grants the model by several rules, one is chosen for it (see
 * chooseRules): a query runs in the scope of the rules that allow it, never
 * in the union of several.
 */
export function confinementOf(cap: Capability, model: string, op: DbOp, fields: readonly string[], pins: ReadonlyMap<string, Scalar> = new Map(), demands: readonly IncludeDemand[] = []): Confinement {
  return confinementOfLineage(cap.lineage, model, op, fields, pins, demands);
}

/** The rules of `link` that grant `op` on `model`. */
const rulesOf = (link: LinkSummary, model: string, op: DbOp) => ((link.grant === null ? undefined : own(link.grant, "db")) ?? []).filter((r) => r.model === model && r.ops.includes(op));

/**
 * The fields whose pinned values can change which rule a query on `model`
 * is confined by: those some link with several rules for it names in a
 * scope or row rule. Empty (the common case) when every link has one rule.
 */
export function choiceFields(lineage: readonly LinkSummary[], model: string, op: DbOp): string[] {
  const out = new Set<string>();
  for (const link of lineage) {
    const rules = rulesOf(link, model, op);
    if (rules.length < 2) continue;
    for (const rule of rules) {
      for (const [k] of scopeOf(rule)) out.add(k);
      const rows = own(rule, "rows");
      if (rows !== undefined) ruleFieldNames(rows, out);
    }
  }
  return [...out].sort();
}

function ruleFieldNames(rule: RowRule, out: Set<string>): void {
  const children = ruleChildren(rule);
  if (children === null) out.add((rule as { field: string }).field);
  else for (const c of children) ruleFieldNames(c, out);
}

/** The same, from a lineage given as data: for code that sees a capability's links but holds no capability, such as a tool's needs. */
export function confinementOfLineage(
  lineage: readonly LinkSummary[],
  model: string,
  op: DbOp,
  fields: readonly string[],
  pins: ReadonlyMap<string, Scalar> = new Map(),
  demands: readonly IncludeDemand[] = [],
): Confinement {
  const scope = new Map<string, ScopeEntry>();
  let reachable: Set<string> | null = null;
  const actions = new Map<string, string>();
  const rows = new Map<string, RowEntry>();
  let maxRows: number | null = null;
  const rowBudgets: RowBudget[] = [];
  const immutable = new Map<string, LinkAt>();
  const required = new Map<string, LinkAt>();
  let requireFilter: LinkAt | null = null;
  let requireReason: LinkAt | null = null;
  const autoSet = new Map<string, AutoSetEntry>();
  const includes: IncludeGrant[] = [];
  // Links that grant nothing here are left out of the choice; the kernel will deny them.
  const granting = lineage.map((link, index) => ({ link, index, rules: rulesOf(link, model, op) })).filter((l) => l.rules.length > 0);
  const chosen = chooseRules(
    granting.map((l) => l.rules),
    fields,
    pins,
    demands,
  );
  granting.forEach(({ link, index }, at) => {
    const rule = chosen[at];
    if (rule === undefined) return;
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
    for (const [list, into] of [
      [own(rule, "immutable"), immutable],
      [own(rule, "required"), required],
    ] as const) {
      for (const f of list ?? []) if (!into.has(f)) into.set(f, { link: index, linkId: link.id });
    }
    if (own(rule, "requireFilter") === true) requireFilter ??= { link: index, linkId: link.id };
    if (own(rule, "requireReason") === true) requireReason ??= { link: index, linkId: link.id };
    for (const [field, source] of Object.entries(own(rule, "autoSet") ?? {})) {
      if (!autoSet.has(field)) autoSet.set(field, { source, link: index, linkId: link.id });
    }
    includes.push({ link: index, linkId: link.id, include: own(rule, "include"), maxDepth: own(rule, "maxIncludeDepth") ?? 1 });
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
  return { scope: [...scope.values()], reachable, actions, rows: [...rows.values()], maxRows, rowBudgets, immutable, required, requireFilter, requireReason, autoSet, includes };
}
