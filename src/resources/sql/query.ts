import { InvalidInput, LimitExceeded, type Scalar } from "../../kernel/index.js";
import { fieldNamed, modelNamed, showValue, valueProblem, type Field, type Model, type Relation, type Schema } from "./schema.js";

/*
 * The structured queries a model may send, and their parsing into a
 * canonical shape plus the values to bind. Input is read once, own
 * properties only, so a getter, a Proxy or a polluted prototype cannot make
 * the parser see one thing and the compiler another. Two queries that differ
 * only in values get the same `key`, which is what lets a compiled statement
 * be reused.
 */

/** Comparison operators a filter can use on one field; several on the same field are ANDed. */
export interface FilterOps {
  readonly eq?: Scalar;
  readonly ne?: Scalar;
  readonly lt?: Scalar;
  readonly lte?: Scalar;
  readonly gt?: Scalar;
  readonly gte?: Scalar;
  readonly in?: readonly Scalar[];
  /** Text fields only; case-sensitive on both engines. */
  readonly startsWith?: string;
  /** Text fields only; case-sensitive on both engines. */
  readonly contains?: string;
}

/** Filters by field: a bare value means equality (`null` means IS NULL); all filters are ANDed. */
export type Where = Readonly<Record<string, Scalar | FilterOps>>;

export interface OrderBy {
  readonly field: string;
  readonly direction?: "asc" | "desc";
}

interface Tenanted {
  /** The tenant the request acts for, for capabilities whose links carry `tenants`. */
  readonly tenant?: string;
}

/** The most characters a write's reason may have. */
export const MAX_REASON = 1000;

interface Reasoned {
  /** Why the write is made (1 to 1000 characters), recorded in its audit event; required by a db rule with `requireReason`. */
  readonly reason?: string;
}

/**
 * The rows of a relation to return with each row, under the relation's
 * name: a list for a relation to many rows, a row or null for one to one.
 * Without `fields`, every field the capability may read of them through
 * the relation. The included rows obey their own model's grant.
 */
export interface IncludeQuery {
  readonly fields?: readonly string[];
  readonly where?: Where;
  readonly orderBy?: readonly OrderBy[];
  readonly include?: Readonly<Record<string, IncludeQuery>>;
}

/** Reads rows of one model. Without `fields`, every field the capability may read is returned. */
export interface ReadQuery extends Tenanted {
  readonly model: string;
  readonly fields?: readonly string[];
  readonly where?: Where;
  readonly orderBy?: readonly OrderBy[];
  /** At most this many rows (1 … maxRows). Without it, more than maxRows matching rows is an error rather than a silent cut. */
  readonly limit?: number;
  readonly offset?: number;
  /** Related rows to return with each row, by relation name (see IncludeQuery). */
  readonly include?: Readonly<Record<string, IncludeQuery>>;
}

/** What an aggregate computes: a count of rows (no field) or of a field's non-null values, or the sum, average, least or greatest of a field. */
export interface AggregateSpec {
  readonly fn: "count" | "sum" | "avg" | "min" | "max";
  readonly field?: string;
}

/**
 * Aggregates over the rows in scope that match `where`, grouped by the
 * `groupBy` fields: one row per group, holding the group's fields and each
 * aggregate under its name. Every field it names is used whole, so a field
 * the capability masks, hashes, redacts or denies can be neither aggregated
 * nor grouped by.
 */
export interface AggregateQuery extends Tenanted {
  readonly model: string;
  readonly aggregates: Readonly<Record<string, AggregateSpec>>;
  readonly where?: Where;
  readonly groupBy?: readonly string[];
}

/** Inserts one row; fields of the capability's row scope that `values` leaves out are set to the scope's values. */
export interface CreateQuery extends Tenanted, Reasoned {
  readonly model: string;
  readonly values: Readonly<Record<string, Scalar>>;
  /** Fields of the new row to return. */
  readonly returning?: readonly string[];
}

/** Changes the rows in scope that match `where`. */
export interface UpdateQuery extends Tenanted, Reasoned {
  readonly model: string;
  readonly set: Readonly<Record<string, Scalar>>;
  readonly where?: Where;
  readonly returning?: readonly string[];
}

/** Deletes the rows in scope that match `where`. */
export interface DeleteQuery extends Tenanted, Reasoned {
  readonly model: string;
  readonly where?: Where;
}

/** The filter operators a query may use, in the order a field's filters are compiled. */
export const FILTER_OPS = Object.freeze(["eq", "ne", "lt", "lte", "gt", "gte", "in", "startsWith", "contains"] as const);
/** Filter operators after parsing: equality with null becomes its own operator, since SQL spells it IS NULL. */
export type ConditionOp = (typeof FILTER_OPS)[number] | "isNull" | "notNull";

/** One filter of a parsed query; it binds `arity` consecutive values of `args`. */
export interface Condition {
  readonly field: Field;
  readonly op: ConditionOp;
  readonly arity: number;
}

export interface Order {
  readonly field: Field;
  readonly descending: boolean;
}

/** The parts every parsed query has. */
interface ParsedBase {
  readonly model: Model;
  /** Same key, same SQL (once the row scope's fields are known); values never enter it. */
  readonly key: string;
  /** Values to bind, in the order the shape consumes them. */
  readonly args: readonly Scalar[];
  /** Every field the input names (read, written, filtered on, ordered by, returned), each once. */
  readonly named: readonly Field[];
  /** Fields its equality filters pin to a value: a pin on a row-scope field is checked against the scope. */
  readonly pins: readonly (readonly [Field, Scalar])[];
  /** Fields it writes, with their new values: a write to a row-scope field is checked against the scope too. */
  readonly writes: readonly (readonly [Field, Scalar])[];
  readonly tenant: string | undefined;
  /** A write's reason, as given; undefined for reads and writes without one. */
  readonly reason: string | undefined;
}

/** One aggregate of a parsed aggregate query: its output name, function, and field (null: every row). */
export interface Aggregate {
  readonly name: string;
  readonly fn: AggregateSpec["fn"];
  readonly field: Field | null;
}

export interface ParsedRead extends ParsedBase {
  readonly op: "read";
  /** For an aggregate query: what it computes (select then lists the group fields); null for a read of rows. */
  readonly aggregates: readonly Aggregate[] | null;
  /** Fields it filters on or orders by: these are used whole, whatever the capability shows of them. */
  readonly used: readonly Field[];
  /** null: every field the capability may read. */
  readonly select: readonly Field[] | null;
  readonly conditions: readonly Condition[];
  readonly order: readonly Order[];
  /** The LIMIT compiled into the statement: the caller's, or maxRows + 1 to detect an oversized result. */
  readonly limit: number;
  /** Whether the caller gave a limit; without one, more than maxRows rows is an error. */
  readonly limitGiven: boolean;
  /** Relations whose rows are included with each row (absent: none). */
  readonly includes?: readonly ParsedInclude[];
  /** Fields read only to relate rows (the included relations' `from`; for an included read, its `to`): used whole, returned only when asked for. */
  readonly links?: readonly Field[];
  /** For an included read: when it names no fields, it returns only these (what every link lets the relation show); absent: no such bound. */
  readonly within?: ReadonlySet<string>;
  readonly hasOffset: boolean;
}

export interface ParsedCreate extends ParsedBase {
  readonly op: "create";
  /** The fields `values` sets, in schema order; `args` holds their values in that order. */
  readonly columns: readonly Field[];
  readonly returning: readonly Field[];
}

export interface ParsedUpdate extends ParsedBase {
  readonly op: "update";
  /** The fields `set` changes; their values come first in `args`, then the conditions'. */
  readonly set: readonly Field[];
  readonly conditions: readonly Condition[];
  readonly returning: readonly Field[];
}

export interface ParsedDelete extends ParsedBase {
  readonly op: "delete";
  readonly conditions: readonly Condition[];
}

export type ParsedQuery = ParsedRead | ParsedCreate | ParsedUpdate | ParsedDelete;

/** Bounds that parsing enforces. */
export interface QueryLimits {
  readonly maxRows: number;
  /** Values one `in` filter may list. */
  readonly maxInList: number;
  /** Levels of includes one read may nest. */
  readonly maxIncludeDepth: number;
}

/** One relation a read includes: its rows are read per batch of parent rows, each batch confined as a read of the related model. */
export interface ParsedInclude {
  readonly relation: Relation;
  /** The read of the related rows, without the condition that relates them to their parent rows (added per batch). */
  readonly query: ParsedRead;
  /** Levels of includes at and below this one (1: it includes nothing itself). */
  readonly height: number;
}

const MAX_ORDER = 8;

function objectKeys(value: unknown, where: string): { keys: string[]; object: Readonly<Record<string, unknown>> } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInput(`${where} must be an object, got ${showValue(value)}`);
  }
  return { keys: Object.keys(value), object: value as Readonly<Record<string, unknown>> };
}

/** The parts a query of one kind may have, each an own property, so reading an absent one never reaches Object.prototype. */
type QueryParts = Readonly<Record<string, undefined>>;
const parts = (...keys: string[]): QueryParts => Object.freeze(Object.fromEntries(keys.map((k) => [k, undefined])));

/** The query's own properties, each read once, into a copy of `template` (every part present, absent ones undefined); any other key is refused. */
function queryRecord(value: unknown, template: QueryParts): Record<string, unknown> {
  const { keys, object } = objectKeys(value, "query");
  const out: Record<string, unknown> = { ...template };
  for (const key of keys) {
    if (!Object.hasOwn(template, key)) throw new InvalidInput(`query.${key} is not part of a query; expected ${Object.keys(template).join(", ")}`);
    out[key] = object[key];
  }
  return out;
}

/** The elements of an array, read once; holes are refused, since reading one would consult Array.prototype. */
function ownArray(value: unknown, where: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new InvalidInput(`${where} must be an array, got ${showValue(value)}`);
  const length = value.length;
  if (length > max) throw new InvalidInput(`${where} lists ${length} items; at most ${max} are allowed`);
  const out = new Array<unknown>(length);
  for (let i = 0; i < length; i++) {
    if (!Object.hasOwn(value, i)) throw new InvalidInput(`${where}.${i} is missing (a hole in the array)`);
    out[i] = value[i] as unknown;
  }
  return out;
}

function reasonOf(q: Record<string, unknown>): string | undefined {
  const r = q.reason;
  if (r === undefined) return r;
  if (typeof r !== "string" || r.trim().length === 0 || r.length > MAX_REASON) {
    throw new InvalidInput(`query.reason must be a sentence of 1 to ${MAX_REASON} characters saying why the write is made, got ${showValue(r)}`);
  }
  return r;
}

function tenantOf(q: Record<string, unknown>): string | undefined {
  const t = q.tenant;
  if (t === undefined || typeof t === "string") return t;
  throw new InvalidInput(`query.tenant must be a string, got ${showValue(t)}`);
}

const byPosition = (a: Field, b: Field) => a.position - b.position;

/** `fields` in schema order, sorted in place; most lists already are, and checking is cheaper than sorting. */
function inSchemaOrder(fields: Field[]): Field[] {
  for (let i = 1; i < fields.length; i++) {
    if ((fields[i - 1] as Field).position > (fields[i] as Field).position) return fields.sort(byPosition);
  }
  return fields;
}

/** Adds `f` to `names` unless it is there already (the lists are a few fields long). */
function addName(names: Field[], f: Field): void {
  if (!names.includes(f)) names.push(f);
}

function fieldList(model: Model, value: unknown, where: string, names: Field[]): Field[] {
  const items = ownArray(value, where, model.fields.length);
  if (items.length === 0) throw new InvalidInput(`${where} must name at least one field`);
  const fields: Field[] = [];
  for (let i = 0; i < items.length; i++) {
    const field = fieldNamed(model, items[i], where, i);
    if (fields.includes(field)) throw new InvalidInput(`${where} names ${field.name} twice`);
    fields.push(field);
    addName(names, field);
  }
  return inSchemaOrder(fields);
}

const OPS_ORDER: ReadonlyMap<string, number> = new Map(FILTER_OPS.map((op, i) => [op, i]));

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

/** `value` if it fits `field`; otherwise InvalidInput naming where it was (the path is only built for the error). */
function fitting(field: Field, value: unknown, where: string, op: string): Scalar {
  const problem = valueProblem(field, value);
  if (problem !== null) throw new InvalidInput(`${where}.${op}: ${problem}`);
  return value as Scalar;
}

interface Filter {
  readonly condition: Condition;
  readonly values: readonly Scalar[];
}

/** A query's filters in canonical order, the values they bind in that order, and the part of the shape key they make. */
interface Filters {
  readonly conditions: Condition[];
  readonly values: Scalar[];
  readonly key: string;
}

const NO_FILTERS: Filters = Object.freeze({ conditions: [], values: [], key: "" });

function filterFor(field: Field, op: string, value: unknown, where: string, limits: QueryLimits): Filter {
  switch (op) {
    case "eq":
    case "ne":
      if (value === null) return { condition: { field, op: op === "eq" ? "isNull" : "notNull", arity: 0 }, values: [] };
      return { condition: { field, op, arity: 1 }, values: [fitting(field, value, where, op)] };
    case "lt":
    case "lte":
    case "gt":
    case "gte":
      if (value === null) throw new InvalidInput(`${where}.${op}: null cannot be compared; use eq: null or ne: null`);
      return { condition: { field, op, arity: 1 }, values: [fitting(field, value, where, op)] };
    case "in": {
      const items = ownArray(value, `${where}.in`, limits.maxInList);
      if (items.length === 0) throw new InvalidInput(`${where}.in must list at least one value`);
      const values = items.map((v, i) => {
        if (v === null) throw new InvalidInput(`${where}.in.${i}: null never matches in a list; use eq: null`);
        return fitting(field, v, `${where}.in`, String(i));
      });
      return { condition: { field, op, arity: values.length }, values };
    }
    case "startsWith":
    case "contains":
      if (field.type !== "text") throw new InvalidInput(`${where}.${op}: ${field.name} is not a text field`);
      if (typeof value !== "string") throw new InvalidInput(`${where}.${op}: must be a string, got ${showValue(value)}`);
      return { condition: { field, op, arity: 1 }, values: [value] };
    default:
      throw new InvalidInput(`${where}: unknown filter operator ${showValue(op)}; expected ${FILTER_OPS.join(", ")}`);
  }
}

/** The filters of `where`, each own property read once and straight from the input (its keys are the model's to choose, so none is copied into an object). */
function parseWhere(model: Model, value: unknown, names: Field[], pins: [Field, Scalar][], limits: QueryLimits): Filters {
  if (value === undefined) return NO_FILTERS;
  const { keys, object } = objectKeys(value, "where");
  const filters: Filter[] = [];
  for (const name of keys) {
    const field = fieldNamed(model, name, "where");
    addName(names, field);
    const spec = object[name];
    if (isScalar(spec)) {
      filters.push(filterFor(field, "eq", spec, `where.${name}`, limits));
      pins.push([field, spec]);
      continue;
    }
    if (Array.isArray(spec)) throw new InvalidInput(`where.${name}: a list needs an operator, as in { in: [...] }`);
    const ops = objectKeys(spec, `where.${name}`);
    if (ops.keys.length === 0) throw new InvalidInput(`where.${name} names no operator; expected one of ${FILTER_OPS.join(", ")}`);
    for (const op of ops.keys) {
      const v = ops.object[op];
      filters.push(filterFor(field, op, v, `where.${name}`, limits));
      if (op === "eq" && isScalar(v)) pins.push([field, v]);
    }
  }
  // One canonical order, so filters written in any key order share a statement.
  if (filters.length > 1) {
    filters.sort(
      (a, b) =>
        a.condition.field.position - b.condition.field.position ||
        (OPS_ORDER.get(a.condition.op) ?? 0) - (OPS_ORDER.get(b.condition.op) ?? 0),
    );
  }
  const conditions: Condition[] = [];
  const values: Scalar[] = [];
  let key = "";
  for (const { condition: c, values: v } of filters) {
    conditions.push(c);
    for (const x of v) values.push(x);
    key += c.op === "in" ? `${c.field.name}.in${c.arity},` : `${c.field.name}.${c.op},`;
  }
  return { conditions, values, key };
}

function parseOrder(model: Model, value: unknown, names: Field[]): Order[] {
  if (value === undefined) return [];
  return ownArray(value, "orderBy", MAX_ORDER).map((item, i) => {
    const { keys, object } = objectKeys(item, `orderBy.${i}`);
    const extra = keys.find((k) => k !== "field" && k !== "direction");
    if (extra !== undefined) throw new InvalidInput(`orderBy.${i}.${extra} is not part of an ordering; expected field, direction`);
    const field = fieldNamed(model, keys.includes("field") ? object.field : undefined, `orderBy.${i}.field`);
    const direction = (keys.includes("direction") ? object.direction : undefined) ?? "asc";
    if (direction !== "asc" && direction !== "desc") throw new InvalidInput(`orderBy.${i}.direction must be "asc" or "desc", got ${showValue(direction)}`);
    addName(names, field);
    return { field, descending: direction === "desc" };
  });
}

function count(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new InvalidInput(`${where} must be a whole number, zero or more, got ${showValue(value)}`);
  }
  return value as number;
}

function parseValues(model: Model, value: unknown, where: string, names: Field[]): { fields: Field[]; values: Scalar[]; writes: [Field, Scalar][] } {
  const { keys, object } = objectKeys(value, where);
  const entries = keys.map((name) => {
    const field = fieldNamed(model, name, where);
    // Refused for every value alike, so trying one says nothing about which values exist.
    if (field.generated) throw new InvalidInput(`${where}.${name}: ${model.name}.${name} is assigned by the database; a query cannot give it`);
    addName(names, field);
    return [field, fitting(field, object[name], where, name)] as [Field, Scalar];
  });
  entries.sort((a, b) => a[0].position - b[0].position);
  return { fields: entries.map((e) => e[0]), values: entries.map((e) => e[1]), writes: entries };
}

const READ_KEYS = parts("model", "fields", "where", "orderBy", "limit", "offset", "tenant", "include");
const INCLUDE_KEYS = parts("fields", "where", "orderBy", "include");
const CREATE_KEYS = parts("model", "values", "returning", "tenant", "reason");
const UPDATE_KEYS = parts("model", "set", "where", "returning", "tenant", "reason");
const DELETE_KEYS = parts("model", "where", "tenant", "reason");

function names(fields: readonly Field[]): string {
  let key = "";
  for (const f of fields) key += `${f.name},`;
  return key;
}

function orderKeyOf(order: readonly Order[]): string {
  let key = "";
  for (const o of order) key += `${o.field.name}.${o.descending ? "d" : "a"},`;
  return key;
}

/** A read's includes, in name order; `depth` is the level they are at (1: included by the read itself). */
function parseIncludes(model: Model, value: unknown, tenant: string | undefined, limits: QueryLimits, depth: number): { includes: ParsedInclude[]; links: Field[]; key: string } {
  if (value === undefined) return { includes: [], links: [], key: "" };
  if (depth > limits.maxIncludeDepth) {
    throw new LimitExceeded(`the read nests includes ${depth} levels deep; one read may nest at most ${limits.maxIncludeDepth} (maxIncludeDepth)`, "maxIncludeDepth");
  }
  const { keys, object } = objectKeys(value, "include");
  const includes: ParsedInclude[] = [];
  const links: Field[] = [];
  let key = "";
  for (const name of [...keys].sort()) {
    const relation = model.relations.get(name);
    if (relation === undefined) throw new InvalidInput(`include: ${model.name} has no relation ${showValue(name)}`);
    let query: ParsedRead;
    try {
      query = parseIncluded(relation, object[name], tenant, limits, depth);
    } catch (e) {
      if (!(e instanceof InvalidInput)) throw e;
      throw new InvalidInput(`include.${name}: ${e.message}`, { cause: e });
    }
    addName(links, relation.from);
    const height = 1 + Math.max(0, ...(query.includes ?? []).map((i) => i.height));
    includes.push({ relation, query, height });
    key += `${name}(${query.key}),`;
  }
  return { includes, links, key };
}

/** The read of the rows one relation includes, before it is related to any parent row. */
function parseIncluded(relation: Relation, value: unknown, tenant: string | undefined, limits: QueryLimits, depth: number): ParsedRead {
  const q = queryRecord(value, INCLUDE_KEYS);
  const model = relation.model;
  const used: Field[] = [];
  const pins: [Field, Scalar][] = [];
  const select = q.fields === undefined ? null : fieldList(model, q.fields, "fields", []);
  const filters = parseWhere(model, q.where, used, pins, limits);
  const order = parseOrder(model, q.orderBy, used);
  const nested = parseIncludes(model, q.include, tenant, limits, depth + 1);
  const links = [relation.to];
  for (const f of nested.links) addName(links, f);
  for (const f of links) addName(used, f);
  return rowRead(model, select, filters, order, used, pins, tenant, {
    key: `include:${model.name}:${select === null ? "*" : names(select)}:${filters.key}:${orderKeyOf(order)}:${relation.to.name}:${nested.key}`,
    args: filters.values,
    limit: limits.maxRows + 1,
    limitGiven: false,
    hasOffset: false,
    includes: nested.includes,
    links: inSchemaOrder(links),
  });
}

/** What a read of rows is made of beyond its model, fields, filters and order: these differ between a top-level read and an included one. */
type ReadParts = Pick<ParsedRead, "key" | "args" | "limit" | "limitGiven" | "hasOffset" | "includes" | "links">;

/** A read of rows: every field it filters, orders or relates by is named with the fields it selects. */
function rowRead(model: Model, select: readonly Field[] | null, filters: Filters, order: ParsedRead["order"], used: Field[], pins: [Field, Scalar][], tenant: string | undefined, parts: ReadParts): ParsedRead {
  const named = [...(select ?? [])];
  for (const f of used) addName(named, f);
  return {
    op: "read",
    model,
    named: inSchemaOrder(named),
    pins,
    writes: [],
    tenant,
    reason: undefined,
    used: inSchemaOrder(used),
    aggregates: null,
    select,
    conditions: filters.conditions,
    order,
    ...parts,
  };
}

/** Parses a read; throws InvalidInput naming the bad part, or LimitExceeded for a limit above maxRows. */
export function parseRead(schema: Schema, input: unknown, limits: QueryLimits): ParsedRead {
  const q = queryRecord(input, READ_KEYS);
  const model = modelNamed(schema, q.model);
  const used: Field[] = [];
  const pins: [Field, Scalar][] = [];
  const select = q.fields === undefined ? null : fieldList(model, q.fields, "fields", []);
  const filters = parseWhere(model, q.where, used, pins, limits);
  const order = parseOrder(model, q.orderBy, used);
  const tenant = tenantOf(q);
  const nested = parseIncludes(model, q.include, tenant, limits, 1);
  for (const f of nested.links) addName(used, f);
  const limitGiven = q.limit !== undefined;
  const limit = limitGiven ? count(q.limit, "limit") : limits.maxRows + 1;
  if (limitGiven && limit === 0) throw new InvalidInput("limit must be at least 1");
  if (limitGiven && limit > limits.maxRows) {
    throw new LimitExceeded(`limit ${limit} is above the ${limits.maxRows} rows one read may return (maxRows); page with limit and offset`, "maxRows");
  }
  const hasOffset = q.offset !== undefined;
  const args = hasOffset ? [...filters.values, count(q.offset, "offset")] : filters.values;
  return rowRead(model, select, filters, order, used, pins, tenant, {
    key: `read:${model.name}:${select === null ? "*" : names(select)}:${filters.key}:${orderKeyOf(order)}:${limit}:${hasOffset ? "o" : ""}${nested.key === "" ? "" : `:${nested.key}`}`,
    args,
    limit,
    limitGiven,
    hasOffset,
    ...(nested.includes.length > 0 ? { includes: nested.includes, links: inSchemaOrder(nested.links) } : {}),
  });
}

const AGGREGATE_KEYS = parts("model", "aggregates", "where", "groupBy", "tenant");
const AGGREGATE_FNS: ReadonlySet<unknown> = new Set(["count", "sum", "avg", "min", "max"]);
const MAX_AGGREGATES = 16;

function parseAggregates(model: Model, value: unknown, groups: readonly Field[], used: Field[]): Aggregate[] {
  const { keys, object } = objectKeys(value, "aggregates");
  if (keys.length === 0) throw new InvalidInput("aggregates must name at least one aggregate, as in { orders: { fn: \"count\" } }");
  if (keys.length > MAX_AGGREGATES) throw new InvalidInput(`aggregates names ${keys.length}; at most ${MAX_AGGREGATES} are allowed`);
  return keys
    .map((name) => {
      const where = `aggregates.${name}`;
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name) || name === "__proto__") throw new InvalidInput(`${where}: the name must be an identifier`);
      if (groups.some((g) => g.name === name)) throw new InvalidInput(`${where}: the name is also a groupBy field`);
      const spec = objectKeys(object[name], where);
      const extra = spec.keys.find((k) => k !== "fn" && k !== "field");
      if (extra !== undefined) throw new InvalidInput(`${where}.${extra} is not part of an aggregate; expected fn, field`);
      const rawFn = spec.keys.includes("fn") ? spec.object.fn : undefined;
      if (!AGGREGATE_FNS.has(rawFn)) throw new InvalidInput(`${where}.fn must be one of count, sum, avg, min, max, got ${showValue(rawFn)}`);
      const fn = rawFn as AggregateSpec["fn"];
      const rawField = spec.keys.includes("field") ? spec.object.field : undefined;
      if (rawField === undefined) {
        if (fn !== "count") throw new InvalidInput(`${where}: ${fn} needs a field`);
        return { name, fn: "count" as const, field: null };
      }
      const field = fieldNamed(model, rawField, `${where}.field`);
      if ((fn === "sum" || fn === "avg") && field.type !== "integer" && field.type !== "real") throw new InvalidInput(`${where}: ${fn} needs a number field; ${field.name} is ${field.type}`);
      // Postgres has no least or greatest boolean; both engines answer alike only without them.
      if ((fn === "min" || fn === "max") && field.type === "boolean") throw new InvalidInput(`${where}: ${fn} needs a number or text field; ${field.name} is boolean`);
      addName(used, field);
      return { name, fn, field };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Parses an aggregate query into a read of groups; throws InvalidInput naming the bad part. */
export function parseAggregate(schema: Schema, input: unknown, limits: QueryLimits): ParsedRead {
  const q = queryRecord(input, AGGREGATE_KEYS);
  const model = modelNamed(schema, q.model);
  const used: Field[] = [];
  const pins: [Field, Scalar][] = [];
  const groups = q.groupBy === undefined ? [] : fieldList(model, q.groupBy, "groupBy", used);
  if (q.aggregates === undefined) throw new InvalidInput("query.aggregates is required: what to compute, as in { orders: { fn: \"count\" } }");
  const aggregates = parseAggregates(model, q.aggregates, groups, used);
  const filters = parseWhere(model, q.where, used, pins, limits);
  const named = inSchemaOrder(used);
  return {
    op: "read",
    model,
    key: `aggregate:${model.name}:${names(groups)}:${aggregates.map((a) => `${a.name}=${a.fn}(${a.field?.name ?? "*"})`).join(",")}:${filters.key}`,
    args: filters.values,
    named,
    pins,
    writes: [],
    tenant: tenantOf(q),
    reason: undefined,
    used: named,
    aggregates,
    select: groups,
    conditions: filters.conditions,
    order: groups.map((field) => ({ field, descending: false })),
    limit: limits.maxRows + 1,
    limitGiven: false,
    hasOffset: false,
  };
}

/** Parses a create; throws InvalidInput naming the bad part. */
export function parseCreate(schema: Schema, input: unknown): ParsedCreate {
  const q = queryRecord(input, CREATE_KEYS);
  const model = modelNamed(schema, q.model);
  const named: Field[] = [];
  if (q.values === undefined) throw new InvalidInput("query.values is required: the fields of the new row");
  const { fields, values, writes } = parseValues(model, q.values, "values", named);
  const returning = q.returning === undefined ? [] : fieldList(model, q.returning, "returning", named);
  return {
    op: "create",
    model,
    key: `create:${model.name}:${names(fields)}:${names(returning)}`,
    args: values,
    named: inSchemaOrder(named),
    pins: [],
    writes,
    tenant: tenantOf(q),
    reason: reasonOf(q),
    columns: fields,
    returning,
  };
}

/** Parses an update; throws InvalidInput naming the bad part. */
export function parseUpdate(schema: Schema, input: unknown, limits: QueryLimits): ParsedUpdate {
  const q = queryRecord(input, UPDATE_KEYS);
  const model = modelNamed(schema, q.model);
  const named: Field[] = [];
  const pins: [Field, Scalar][] = [];
  const filters = parseWhere(model, q.where, named, pins, limits);
  if (q.set === undefined) throw new InvalidInput("query.set is required: the fields to change");
  const { fields, values, writes } = parseValues(model, q.set, "set", named);
  if (fields.length === 0) throw new InvalidInput("query.set must change at least one field");
  const returning = q.returning === undefined ? [] : fieldList(model, q.returning, "returning", named);
  return {
    op: "update",
    model,
    key: `update:${model.name}:${names(fields)}:${filters.key}:${names(returning)}`,
    args: [...values, ...filters.values],
    named: inSchemaOrder(named),
    pins,
    writes,
    tenant: tenantOf(q),
    reason: reasonOf(q),
    set: fields,
    conditions: filters.conditions,
    returning,
  };
}

/** Parses a delete; throws InvalidInput naming the bad part. */
export function parseDelete(schema: Schema, input: unknown, limits: QueryLimits): ParsedDelete {
  const q = queryRecord(input, DELETE_KEYS);
  const model = modelNamed(schema, q.model);
  const named: Field[] = [];
  const pins: [Field, Scalar][] = [];
  const filters = parseWhere(model, q.where, named, pins, limits);
  return {
    op: "delete",
    model,
    key: `delete:${model.name}:${filters.key}`,
    args: filters.values,
    named: inSchemaOrder(named),
    pins,
    writes: [],
    tenant: tenantOf(q),
    reason: reasonOf(q),
    conditions: filters.conditions,
  };
}
