import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type Expression,
  type ExpressionBuilder,
  type RawBuilder,
  type SqlBool,
} from "kysely";
import { AgentcapError, type Scalar } from "../../kernel/index.js";
import type { Aggregate, Condition, ParsedQuery } from "./query.js";
import type { RuleNode } from "./row-rules.js";
import type { Field, Model } from "./schema.js";

/*
 * Query shapes compiled to parameterized SQL by Kysely, the one query
 * builder for both dialects. Kysely only compiles here: its driver is a
 * DummyDriver, so it never holds a connection, and the engines execute the
 * SQL themselves through statements they prepare once per shape.
 *
 * Values never reach Kysely. Each parameter is built from a Slot, a
 * placeholder naming which value (the row scope's first, then the query's
 * arguments) it will bind; reading the Slots back out of the compiled
 * parameters gives the binding plan for every later call of the same shape.
 */

/** The SQL dialects agentcap compiles to, one per engine. */
export type Dialect = "sqlite" | "postgres";

/** Tables as Kysely sees them: any name, any column. Names come only from the validated schema. */
type Tables = Record<string, Record<string, unknown>>;
type Builder = ExpressionBuilder<Tables, string>;

/** Which value a parameter binds, and the field whose type encodes it (null for a row count such as offset). */
export class Slot {
  constructor(
    readonly index: number,
    readonly field: Field | null,
  ) {}
}

/** A shape compiled once: the SQL text, and for each of its parameters the slot it binds. */
export interface CompiledShape {
  readonly sql: string;
  readonly params: readonly Slot[];
  /** Fields of each returned row, by name (the select list, or the write's returning list). */
  readonly output: readonly Field[];
}

function compileOnly(dialect: Dialect): Kysely<Tables> {
  const parts =
    dialect === "sqlite"
      ? { adapter: () => new SqliteAdapter(), compiler: () => new SqliteQueryCompiler(), introspector: (db: Kysely<Tables>) => new SqliteIntrospector(db) }
      : { adapter: () => new PostgresAdapter(), compiler: () => new PostgresQueryCompiler(), introspector: (db: Kysely<Tables>) => new PostgresIntrospector(db) };
  return new Kysely<Tables>({
    dialect: {
      createAdapter: parts.adapter,
      createDriver: () => new DummyDriver(),
      createIntrospector: parts.introspector,
      createQueryCompiler: parts.compiler,
    },
  });
}

const builders: Record<Dialect, Kysely<Tables>> = { sqlite: compileOnly("sqlite"), postgres: compileOnly("postgres") };

/** A parameter placeholder: a template holding only the slot, so Kysely emits exactly one bound parameter. */
function bind<T = Scalar>(slot: Slot): RawBuilder<T> {
  return sql<T>`${slot}`;
}

/**
 * A column qualified by its table. In ORDER BY a bare name would resolve to
 * an output alias first, and the aliases are field names, which may be
 * another column's name.
 */
function column(model: Model, field: Field): string {
  return `${model.table}.${field.column}`;
}

const COMPARISON = { eq: "=", ne: "<>", lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;

function conditionSql(dialect: Dialect, model: Model, eb: Builder, c: Condition, slots: readonly Slot[]): Expression<SqlBool> {
  const ref = eb.ref(column(model, c.field));
  const first = slots[0] as Slot;
  switch (c.op) {
    case "eq":
    case "ne":
    case "lt":
    case "lte":
    case "gt":
    case "gte":
      return eb(ref, COMPARISON[c.op], bind(first));
    case "in":
      return eb(ref, "in", slots.map((s) => bind(s)));
    case "isNull":
      return eb(ref, "is", null);
    case "notNull":
      return eb(ref, "is not", null);
    // Plain string functions rather than LIKE: no wildcard escaping, and the same case-sensitive answer on both engines.
    // On Postgres a text field may hold a uuid or an enum, which have no string functions of their own: they are read as their text.
    case "startsWith":
      return eb(eb.fn("substr", [asText(dialect, ref), sql.lit(1), eb.fn("length", [bind(first)])]), "=", bind(first));
    case "contains":
      return eb(eb.fn(dialect === "sqlite" ? "instr" : "strpos", [asText(dialect, ref), bind(first)]), ">", sql.lit(0));
  }
}

/** `ref` as text: as it is on SQLite, cast on Postgres (where a text field may be a uuid or enum column). */
function asText(dialect: Dialect, ref: Expression<unknown>): Expression<unknown> {
  return dialect === "sqlite" ? ref : sql`CAST(${ref} AS text)`;
}

/** A row rule's expression; `at.next` is the slot of its first value, advanced past the values it binds. */
function ruleSql(dialect: Dialect, model: Model, eb: Builder, node: RuleNode, at: { next: number }): Expression<SqlBool> {
  switch (node.kind) {
    case "compare": {
      const c = node.condition;
      const slots = Array.from({ length: c.arity }, (_, k) => new Slot(at.next + k, c.field));
      at.next += c.arity;
      return conditionSql(dialect, model, eb, c, slots);
    }
    case "not":
      return eb.not(ruleSql(dialect, model, eb, node.child, at));
    case "all":
      return eb.and(node.children.map((c) => ruleSql(dialect, model, eb, c, at)));
    case "any":
      return eb.or(node.children.map((c) => ruleSql(dialect, model, eb, c, at)));
  }
}

/** What a WHERE clause is built from besides the query's own conditions. */
interface WhereParts {
  readonly dialect: Dialect;
  readonly model: Model;
  readonly scope: readonly Field[];
  readonly rules: readonly RuleNode[];
  /** The engine's per-row condition (SQL text from the engine, never from a query), or null. */
  readonly guard: string | null;
  /** Positions of query conditions left out: each an equality the row scope states with the same value (see compileShape). */
  readonly omit: ReadonlySet<number>;
}

/**
 * Where clause: the row scope's equalities, the capability's row rules (their
 * values right after the scope's), then the query's conditions, all after
 * the engine's guard; `next` is the slot of the first condition value.
 */
function whereSql({ dialect, model, scope, rules, guard, omit }: WhereParts, conditions: readonly Condition[], next: number) {
  return (eb: Builder): Expression<SqlBool> => {
    const parts: Expression<SqlBool>[] = scope.map((f, i) => eb(eb.ref(column(model, f)), "=", bind(new Slot(i, f))));
    const ruleSlots = { next: scope.length };
    for (const rule of rules) parts.push(ruleSql(dialect, model, eb, rule, ruleSlots));
    let at = next;
    for (const [i, c] of conditions.entries()) {
      const slots = Array.from({ length: c.arity }, (_, k) => new Slot(at + k, c.field));
      // An omitted condition's value keeps its slot, so every later value binds where it would have.
      at += c.arity;
      if (!omit.has(i)) parts.push(conditionSql(dialect, model, eb, c, slots));
    }
    // First: SQLite evaluates the terms in order and stops at the first false one, so a guard after a filter no row passes would never run.
    if (guard !== null) parts.unshift(sql<SqlBool>`${sql.raw(guard)}`);
    return eb.and(parts);
  };
}

const aliased = (fields: readonly Field[]) => (eb: Builder) => fields.map((f) => eb.ref(f.column).as(f.name));

/** The field an aggregate's result is returned as: its type decides how it is decoded. */
export function aggregateOutput(a: Aggregate, position: number): Field {
  const type = a.fn === "count" ? "integer" : a.fn === "avg" ? "real" : (a.field as Field).type;
  return { name: a.name, column: a.name, type, nullable: a.fn !== "count", generated: false, position };
}

function aggregateSql(model: Model, eb: Builder, a: Aggregate) {
  if (a.field === null) return eb.fn.countAll().as(a.name);
  const ref = eb.ref(column(model, a.field));
  switch (a.fn) {
    case "count":
      return eb.fn.count(ref).as(a.name);
    case "sum":
      return eb.fn.sum(ref).as(a.name);
    case "avg":
      return eb.fn.avg(ref).as(a.name);
    case "min":
      return eb.fn.min(ref).as(a.name);
    case "max":
      return eb.fn.max(ref).as(a.name);
  }
}

function toShape(compiled: { readonly sql: string; readonly parameters: readonly unknown[] }, output: readonly Field[]): CompiledShape {
  const params = compiled.parameters.map((p) => {
    // Kysely placed a value of its own among the parameters: a defect in agentcap's query building, never a caller's input.
    if (!(p instanceof Slot)) throw new AgentcapError("agentcap could not compile this query safely: a SQL parameter did not come from the query's own values");
    return p;
  });
  return Object.freeze({ sql: compiled.sql, params: Object.freeze(params), output: Object.freeze([...output]) });
}

const OMIT_NONE: ReadonlySet<number> = new Set();

/**
 * Compiles one shape. `scope` lists the row-scope fields (slots 0 …), `rules`
 * the row rules (their `ruleValueCount` values next), `select` the fields a
 * read returns, `guard` the engine's per-row condition. Everything in the
 * SQL text comes from the schema, the engine or this module; the values are
 * all slots. `omit` names query conditions to leave out of the WHERE clause:
 * only for a statement run with values that make each of them repeat a
 * scope equality (see scopeRepeats), which then says the same.
 */
export function compileShape(
  dialect: Dialect,
  q: ParsedQuery,
  scope: readonly Field[],
  rules: readonly RuleNode[],
  ruleValueCount: number,
  select: readonly Field[],
  guard: string | null,
  omit: ReadonlySet<number> = OMIT_NONE,
): CompiledShape {
  const db = builders[dialect];
  const { model } = q;
  const where: WhereParts = { dialect, model, scope, rules, guard, omit };
  const base = scope.length + ruleValueCount;
  switch (q.op) {
    case "read": {
      const aggregates = q.aggregates;
      if (aggregates !== null) {
        const groups = select.map((f) => sql.ref(column(model, f)));
        let query = db
          .selectFrom(model.table)
          .select((eb) => [...select.map((f) => eb.ref(column(model, f)).as(f.name)), ...aggregates.map((a) => aggregateSql(model, eb, a))])
          .where(whereSql(where, q.conditions, base));
        if (groups.length > 0) query = query.groupBy(groups);
        for (const g of groups) query = query.orderBy(g, "asc");
        const output = [...select, ...aggregates.map((a, i) => aggregateOutput(a, select.length + i))];
        return toShape(query.limit(sql.lit(q.limit)).compile(), output);
      }
      let query = db
        .selectFrom(model.table)
        .select(aliased(select))
        .where(whereSql(where, q.conditions, base));
      for (const o of q.order) query = query.orderBy(sql.ref(column(model, o.field)), o.descending ? "desc" : "asc");
      // A literal: SQLite re-prepares a statement whose LIMIT is a bound parameter on every call (the planner uses it).
      query = query.limit(sql.lit(q.limit));
      if (q.hasOffset) {
        const offsetSlot = base + q.conditions.reduce((n, c) => n + c.arity, 0);
        query = query.offset(bind<number>(new Slot(offsetSlot, null)));
      }
      return toShape(query.compile(), select);
    }
    case "create": {
      const provided = new Map(q.columns.map((f, i) => [f, base + i]));
      const columns = [...new Set([...q.columns, ...scope])].sort((a, b) => a.position - b.position);
      const row: Record<string, RawBuilder<Scalar>> = {};
      for (const f of columns) row[f.column] = bind(new Slot(provided.get(f) ?? scope.indexOf(f), f));
      const insert = db.insertInto(model.table);
      const query = columns.length === 0 ? insert.defaultValues() : insert.values(row);
      return toShape((q.returning.length === 0 ? query : query.returning(aliased(q.returning))).compile(), q.returning);
    }
    case "update": {
      const set: Record<string, RawBuilder<Scalar>> = {};
      q.set.forEach((f, i) => (set[f.column] = bind(new Slot(base + i, f))));
      const query = db
        .updateTable(model.table)
        .set(set)
        .where(whereSql(where, q.conditions, base + q.set.length));
      return toShape((q.returning.length === 0 ? query : query.returning(aliased(q.returning))).compile(), q.returning);
    }
    case "delete":
      return toShape(db.deleteFrom(model.table).where(whereSql(where, q.conditions, base)).compile(), []);
  }
}

/** A query condition `field = value` on a field of the row scope: the condition's position, its value's argument, and the scope value's position. */
export interface ScopeRepeat {
  readonly condition: number;
  readonly arg: number;
  readonly scope: number;
}

/**
 * The conditions of `conditions` that test equality on a field of `scope`.
 * With the call's value equal (===) to the scope's, such a condition is the
 * scope's own term again, bound to the same value through the same encoder,
 * so leaving it out selects exactly the same rows.
 */
export function scopeRepeats(conditions: readonly Condition[], scope: readonly Field[]): readonly ScopeRepeat[] {
  const repeats: ScopeRepeat[] = [];
  let arg = 0;
  for (const [i, c] of conditions.entries()) {
    const at = c.op === "eq" ? scope.indexOf(c.field) : -1;
    if (at >= 0) repeats.push({ condition: i, arg, scope: at });
    arg += c.arity;
  }
  return repeats;
}
