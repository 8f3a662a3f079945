import { InvalidInput, UnmappableSchema } from "../../kernel/index.js";
import { readDrizzleDefinitions, type DrizzleCasingName, type DrizzleColumn, type DrizzleRelation, type DrizzleTable } from "./drizzle-definitions.js";
import type { IntrospectedSchema, Skipped } from "./introspect.js";
import type { FieldSpec, FieldType, ModelSpec, RelationSpec } from "./schema.js";

/*
 * Model definitions imported from the application's Drizzle tables
 * (sqlite-core or pg-core): each table becomes a model named by the key the
 * application exports it under, each column a field named by its key in the
 * table (its column name when they differ, after Drizzle's `casing`), and
 * each relation declared with `relations()` a relation of the same name.
 *
 * A column is mapped only where agentcap reads and writes the very values
 * the database holds and Drizzle means: a SQLite timestamp is the integer it
 * stores, SQLite JSON the text it stores, a Postgres enum or uuid its text.
 * What cannot be mapped so (a Postgres timestamp or json, a bigint or
 * string-mode numeric, a blob, a key over several columns, a relation over
 * several columns or to a table not given) is refused, every problem in one
 * UnmappableSchema naming its table and column; the application may leave
 * such a field or relation out by name, and it is then listed as skipped.
 */

/** How schemaFromDrizzle reads the definitions. */
export interface DrizzleImportOptions {
  /**
   * The `casing` the application gives Drizzle (`drizzle({ casing })` and
   * drizzle-kit's `casing`): the column name of each column declared
   * without one. Without it, such a column is named as its key.
   */
  readonly casing?: DrizzleCasingName;
  /**
   * Fields and relations to leave out, by model (the keys the tables are
   * exported under) and name (the keys of their columns, or relations; a
   * name leaves out both the column and the relation it names): each is
   * listed in `skipped` instead of refused. A model or name that is not
   * among the definitions is InvalidInput.
   */
  readonly leaveOut?: Readonly<Record<string, readonly string[]>>;
}

const TYPES: Readonly<Record<string, FieldType>> = {
  SQLiteInteger: "integer",
  // `integer({ mode: "timestamp" | "timestamp_ms" })`: seconds or milliseconds since the epoch, the integer stored.
  SQLiteTimestamp: "integer",
  // `integer({ mode: "boolean" })`: 1 and 0, which agentcap's SQLite engine reads and writes as booleans.
  SQLiteBoolean: "boolean",
  SQLiteReal: "real",
  SQLiteNumericNumber: "real",
  SQLiteText: "text",
  // `text({ mode: "json" })`: the JSON text stored.
  SQLiteTextJson: "text",
  PgInteger: "integer",
  PgSmallInt: "integer",
  PgSerial: "integer",
  PgSmallSerial: "integer",
  PgBigInt53: "integer",
  PgBigSerial53: "integer",
  PgReal: "real",
  PgDoublePrecision: "real",
  PgNumericNumber: "real",
  PgText: "text",
  PgVarchar: "text",
  PgChar: "text",
  // The pg driver reads uuids and enum values as strings, and Postgres casts a string parameter to the column's type.
  PgUUID: "text",
  PgEnumColumn: "text",
  PgEnumObjectColumn: "text",
  PgBoolean: "boolean",
};

const BIGINT = "Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1)";
const NUMERIC = "Drizzle reads its values as strings (numeric mode 'string') to keep their precision, where agentcap would read numbers";
const WHY: Readonly<Record<string, string>> = {
  SQLiteNumeric: NUMERIC,
  PgNumeric: NUMERIC,
  SQLiteNumericBigInt: BIGINT,
  SQLiteBigInt: BIGINT,
  PgBigInt64: BIGINT,
  PgBigSerial64: BIGINT,
  PgNumericBigInt: BIGINT,
};

const SERIAL = new Set(["PgSerial", "PgSmallSerial", "PgBigSerial53", "PgBigSerial64"]);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const isName = (name: string) => IDENTIFIER.test(name) && name !== "__proto__";

const named = (name: string, key: string, what: string) => `${name}${key === name ? "" : ` (${what} ${key})`}`;
const whereTable = (t: DrizzleTable) => `table ${named(t.name, t.key, "model")}`;
const whereColumn = (t: DrizzleTable, c: DrizzleColumn) => `${whereTable(t)}, column ${named(c.name, c.key, "field")}`;
const leaveOutHint = (t: DrizzleTable, name: string) => `; leave it out (leaveOut: { ${t.key}: [${JSON.stringify(name)}] }) or declare it otherwise`;

function typeProblem(c: DrizzleColumn): string | null {
  if (Object.hasOwn(TYPES, c.kind)) return null;
  return Object.hasOwn(WHY, c.kind) ? (WHY[c.kind] as string) : `its type ${c.sqlType} (${c.kind}) is not one agentcap reads (integer, real, text, boolean)`;
}

function modelOf(t: DrizzleTable, left: ReadonlySet<string>, problems: string[], skipped: Skipped[]): ModelSpec | null {
  const before = problems.length;
  if (!isName(t.key)) problems.push(`${whereTable(t)}: the key it is exported under is not an identifier (letters, digits, _; at most 63)`);
  if (!isName(t.name)) problems.push(`${whereTable(t)}: its name is not an identifier (letters, digits, _; at most 63)`);
  const [key, ...more] = t.primaryKey;
  if (key === undefined) problems.push(`${whereTable(t)}: it has no primary key`);
  else if (more.length > 0) problems.push(`${whereTable(t)}: its primary key spans several columns (${t.primaryKey.join(", ")})`);
  else if (left.has(key)) problems.push(`${whereTable(t)}: its primary key ${key} is left out`);
  const fields: Record<string, FieldSpec> = {};
  for (const c of t.columns) {
    if (left.has(c.key)) {
      skipped.push({ table: t.name, column: c.name, reason: "left out by the application (leaveOut)" });
      continue;
    }
    const type = typeProblem(c);
    if (type !== null) problems.push(`${whereColumn(t, c)}: ${type}${leaveOutHint(t, c.key)}`);
    else if (!isName(c.key) || !isName(c.name)) problems.push(`${whereColumn(t, c)}: its key or name is not an identifier${leaveOutHint(t, c.key)}`);
    else {
      const generated = c.autoIncrement || c.identity || c.computed || SERIAL.has(c.kind);
      fields[c.key] = { type: TYPES[c.kind] as FieldType, ...(c.name === c.key ? {} : { column: c.name }), ...(c.notNull || c.primary ? {} : { nullable: true }), ...(generated ? { generated: true } : {}) };
    }
  }
  return problems.length === before && key !== undefined ? { table: t.name, primaryKey: key, fields } : null;
}

function relationOf(t: DrizzleTable, r: DrizzleRelation, models: ReadonlyMap<string, ModelSpec>): RelationSpec | string | null {
  if ("problem" in r) return r.problem;
  if (r.from.length !== 1 || r.to.length !== 1) return `it joins several columns (${r.from.join(", ")})`;
  if (r.target === null) return `it relates to table ${r.targetTable}, which is not among the definitions given`;
  const own = models.get(t.key);
  const target = models.get(r.target);
  // A model refused for its own reasons has its problems listed already.
  if (own === undefined || target === undefined) return null;
  const [from, to] = [r.from[0] as string, r.to[0] as string];
  const [a, b] = [Object.hasOwn(own.fields, from) ? own.fields[from] : undefined, Object.hasOwn(target.fields, to) ? target.fields[to] : undefined];
  if (a === undefined) return `it joins on ${t.key}.${from}, which is not imported`;
  if (b === undefined) return `it joins on ${r.target}.${to}, which is not imported`;
  if (a.type !== b.type) return `it joins ${t.key}.${from} (${a.type}) to ${r.target}.${to} (${b.type}); the types must be the same`;
  if (!isName(r.name)) return "its name is not an identifier";
  if (Object.hasOwn(own.fields, r.name)) return `its name is also a field's of ${t.key}, and included rows are returned under the relation's name`;
  return { model: r.target, from, to, ...(r.many ? { many: true } : {}) };
}

function options(value: unknown): { casing: DrizzleCasingName | undefined; leaveOut: Readonly<Record<string, readonly string[]>> } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidInput("schemaFromDrizzle: options must be an object ({ casing, leaveOut })");
  for (const key of Object.keys(value)) if (key !== "casing" && key !== "leaveOut") throw new InvalidInput(`schemaFromDrizzle: options.${key} is not an option; expected casing, leaveOut`);
  const { casing, leaveOut = {} } = value as { casing?: unknown; leaveOut?: unknown };
  if (casing !== undefined && casing !== "snake_case" && casing !== "camelCase") throw new InvalidInput('schemaFromDrizzle: options.casing must be "snake_case" or "camelCase", as Drizzle takes it');
  const invalid = () => new InvalidInput("schemaFromDrizzle: options.leaveOut must map model names to lists of field or relation names");
  if (typeof leaveOut !== "object" || leaveOut === null || Array.isArray(leaveOut)) throw invalid();
  for (const names of Object.values(leaveOut)) if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) throw invalid();
  return { casing, leaveOut: leaveOut as Readonly<Record<string, readonly string[]>> };
}

/**
 * Reads the models of the application's Drizzle definitions: its schema
 * module (`import * as schema from "./schema"`) or any record of its
 * tables and `relations()`; other exports (enums, sequences, validators)
 * are passed over, and views listed as skipped. Needs the optional
 * dependency drizzle-orm (MissingDependency without it). Definitions with
 * no SQLite or Postgres table, or with both, are InvalidInput; what cannot
 * be mapped faithfully is UnmappableSchema, naming every table and column.
 */
export async function schemaFromDrizzle(definitions: Readonly<Record<string, unknown>>, drizzleOptions: DrizzleImportOptions = {}): Promise<IntrospectedSchema> {
  // Checked as any value, as plain JavaScript callers pass whatever they have.
  const given: unknown = definitions;
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new InvalidInput("schemaFromDrizzle takes the application's Drizzle definitions: its schema module, or a record of its tables and relations");
  }
  const { casing, leaveOut } = options(drizzleOptions);
  const read = await readDrizzleDefinitions(definitions, casing);
  const dialects = new Set(read.tables.map((t) => t.dialect));
  if (read.tables.length === 0) throw new InvalidInput("schemaFromDrizzle found no Drizzle table of SQLite (sqlite-core) or Postgres (pg-core) among the definitions");
  if (dialects.size > 1) throw new InvalidInput("schemaFromDrizzle: the definitions mix SQLite and Postgres tables; a database is one or the other");

  const unknown: string[] = [];
  for (const [model, names] of Object.entries(leaveOut)) {
    const table = read.tables.find((t) => t.key === model);
    if (table === undefined) unknown.push(`${model} is not a table among the definitions`);
    else for (const n of names) if (!table.columns.some((c) => c.key === n) && !table.relations.some((r) => r.name === n)) unknown.push(`${model} has no column or relation ${n}`);
  }
  if (unknown.length > 0) throw new InvalidInput(`schemaFromDrizzle: options.leaveOut names what is not there: ${unknown.join("; ")}`);

  const problems: string[] = read.foreign.map((f) => `${f.key}: a ${f.kind}, and agentcap serves SQLite and Postgres`);
  const skipped: Skipped[] = read.views.map((v) => ({ table: v.name, reason: "it is a view; agentcap reads tables" }));
  for (const t of read.tables) {
    const same = read.tables.filter((o) => o.name === t.name);
    // agentcap names a table without its Postgres schema; two of one name would be one table to it.
    if (same[0] === t && same.length > 1) problems.push(`table ${t.name} is given as ${same.map((o) => `${o.key}${o.schema === null ? "" : ` (schema ${o.schema})`}`).join(" and ")}; agentcap names tables without their schema, so each name may be given once`);
  }
  const leftOut = (t: DrizzleTable) => new Set(Object.hasOwn(leaveOut, t.key) ? leaveOut[t.key] : []);
  const models = new Map<string, ModelSpec>();
  for (const t of read.tables) {
    const model = modelOf(t, leftOut(t), problems, skipped);
    if (model !== null) models.set(t.key, model);
  }
  const schema: Record<string, ModelSpec> = {};
  for (const t of read.tables) {
    const left = leftOut(t);
    const relations: Record<string, RelationSpec> = {};
    for (const r of t.relations) {
      if (left.has(r.name)) {
        skipped.push({ table: t.name, column: r.name, reason: "left out by the application (leaveOut)" });
        continue;
      }
      const relation = relationOf(t, r, models);
      if (typeof relation === "string") problems.push(`${whereTable(t)}, relation ${r.name}: ${relation}${leaveOutHint(t, r.name)}`);
      else if (relation !== null) relations[r.name] = relation;
    }
    const model = models.get(t.key);
    if (model !== undefined) schema[t.key] = Object.keys(relations).length > 0 ? { ...model, relations } : model;
  }
  if (problems.length > 0) throw new UnmappableSchema(problems);
  return { schema, skipped };
}
