import type BetterSqlite3 from "better-sqlite3";
import type { Pool } from "pg";
import { InvalidInput } from "../../kernel/index.js";
import type { FieldSpec, FieldType, ModelSpec, RelationSpec, SchemaSpec } from "./schema.js";

/*
 * The schema read from the live database, for applications that would
 * rather not write it by hand: every table of the database (SQLite) or of
 * the connection's current schema (Postgres) with a one-column primary key
 * becomes a model named as the table, each column a field named as the
 * column. What agentcap cannot express is skipped and listed, never guessed:
 * a column of a type outside integer, real, text and boolean, a name that is
 * not an identifier, a table without a one-column primary key.
 *
 * Each one-column foreign key between two models becomes a pair of
 * relations: on the referencing model, to one row, named as its column
 * without an `Id`/`_id` ending (`customerId`: `customer`); on the referenced
 * model, to many rows, named as the referencing table (`orders`), or
 * `orders_by_<column>` when that table has several keys to it. A foreign key
 * over several columns, or whose relation name is taken, is skipped and
 * listed.
 */

/** A table or column the introspection left out, and why. */
export interface Skipped {
  readonly table: string;
  readonly column?: string;
  readonly reason: string;
}

export interface IntrospectedSchema {
  readonly schema: SchemaSpec;
  readonly skipped: readonly Skipped[];
}

interface Column {
  readonly table: string;
  readonly name: string;
  readonly type: string;
  readonly nullable: boolean;
  readonly primaryKey: boolean;
  readonly generated: boolean;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** SQLite's type affinity rules (section 3.1 of its datatype page), with BOOL read as boolean. */
function sqliteType(declared: string): FieldType | null {
  const t = declared.toUpperCase();
  if (t.includes("BOOL")) return "boolean";
  if (t.includes("INT")) return "integer";
  if (t.includes("CHAR") || t.includes("CLOB") || t.includes("TEXT")) return "text";
  if (t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB") || t.includes("NUMERIC") || t.includes("DECIMAL")) return "real";
  return null;
}

const POSTGRES_TYPES: Readonly<Record<string, FieldType>> = {
  smallint: "integer",
  integer: "integer",
  bigint: "integer",
  real: "real",
  "double precision": "real",
  numeric: "real",
  text: "text",
  "character varying": "text",
  character: "text",
  boolean: "boolean",
};

function sqliteColumns(db: BetterSqlite3.Database): Column[] {
  const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").all();
  return tables.flatMap(({ name: table }) =>
    db
      .prepare<[string], { name: string; type: string; notnull: number; pk: number; hidden: number }>("SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid")
      .all(table)
      // hidden 1: a virtual table's hidden column, never a field.
      .filter((c) => c.hidden !== 1)
      .map((c) => ({ table, name: c.name, type: c.type, nullable: c.notnull === 0 && c.pk === 0, primaryKey: c.pk > 0, generated: c.hidden === 2 || c.hidden === 3 })),
  );
}

async function postgresColumns(pool: Pool): Promise<Column[]> {
  const keys = await pool.query<{ table_name: string; column_name: string }>(
    `SELECT kcu.table_name, kcu.column_name FROM information_schema.table_constraints tc
       JOIN information_schema.key_column_usage kcu ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
      WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()`,
  );
  const primary = new Set(keys.rows.map((k) => `${k.table_name}.${k.column_name}`));
  const columns = await pool.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; is_identity: string; is_generated: string; column_default: string | null }>(
    `SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, c.is_identity, c.is_generated, c.column_default
       FROM information_schema.columns c JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`,
  );
  return columns.rows.map((c) => ({
    table: c.table_name,
    name: c.column_name,
    type: c.data_type,
    nullable: c.is_nullable === "YES",
    primaryKey: primary.has(`${c.table_name}.${c.column_name}`),
    // Identity, serial (a sequence's default) and generated columns: the database assigns them.
    generated: c.is_identity === "YES" || c.is_generated === "ALWAYS" || (c.column_default ?? "").startsWith("nextval("),
  }));
}

/** A one-column foreign key: `table.column` references `target.targetColumn` (null: the target's primary key). */
interface ForeignKey {
  readonly table: string;
  readonly column: string;
  readonly target: string;
  readonly targetColumn: string | null;
  readonly columns: number;
}

function sqliteForeignKeys(db: BetterSqlite3.Database, tables: readonly string[]): ForeignKey[] {
  return tables.flatMap((table) => {
    const rows = db.prepare<[string], { id: number; table: string; from: string; to: string | null }>('SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq').all(table);
    return [...new Set(rows.map((r) => r.id))].map((id) => {
      const parts = rows.filter((r) => r.id === id);
      const first = parts[0] as (typeof parts)[number];
      return { table, column: first.from, target: first.table, targetColumn: first.to, columns: parts.length };
    });
  });
}

async function postgresForeignKeys(pool: Pool): Promise<ForeignKey[]> {
  const keys = await pool.query<{ table_name: string; column_name: string; target: string; target_column: string; columns: number }>(
    `SELECT cl.relname AS table_name, a.attname AS column_name, fcl.relname AS target, fa.attname AS target_column, cardinality(c.conkey) AS columns
       FROM pg_constraint c
       JOIN pg_class cl ON cl.oid = c.conrelid
       JOIN pg_class fcl ON fcl.oid = c.confrelid
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
       JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
      WHERE c.contype = 'f' AND cl.relnamespace = current_schema()::regnamespace AND fcl.relnamespace = cl.relnamespace
      ORDER BY cl.relname, c.conname`,
  );
  return keys.rows.map((k) => ({ table: k.table_name, column: k.column_name, target: k.target, targetColumn: k.target_column, columns: k.columns }));
}

/** The relation name a foreign key's column gives its model: the column without an id ending, if anything is left. */
function toOneName(column: string): string {
  const stripped = column.replace(/_?[Ii][Dd]$/, "");
  return stripped.length > 0 ? stripped : column;
}

/** Adds the relations the foreign keys give to the models both ends of which were kept; what does not fit is listed in `skipped`. */
function addRelations(schema: Record<string, ModelSpec>, keys: readonly ForeignKey[], skipped: Skipped[]): void {
  const relations = new Map<string, Record<string, RelationSpec>>();
  const add = (model: string, name: string, spec: RelationSpec, key: ForeignKey): void => {
    const taken = relations.get(model) ?? {};
    const m = schema[model] as ModelSpec;
    if (Object.hasOwn(m.fields, name) || Object.hasOwn(taken, name) || !IDENTIFIER.test(name) || name === "__proto__") {
      skipped.push({ table: key.table, column: key.column, reason: `its foreign key would make a relation ${name} of ${model}, a name already taken` });
      return;
    }
    relations.set(model, { ...taken, [name]: spec });
  };
  for (const key of keys) {
    if (!Object.hasOwn(schema, key.table) || !Object.hasOwn(schema, key.target)) continue;
    const from = schema[key.table] as ModelSpec;
    const to = schema[key.target] as ModelSpec;
    const targetColumn = key.targetColumn ?? to.primaryKey;
    if (key.columns !== 1) {
      skipped.push({ table: key.table, column: key.column, reason: "its foreign key spans several columns" });
      continue;
    }
    if (!Object.hasOwn(from.fields, key.column) || !Object.hasOwn(to.fields, targetColumn)) continue;
    if (from.fields[key.column]?.type !== to.fields[targetColumn]?.type) {
      skipped.push({ table: key.table, column: key.column, reason: `its foreign key relates columns of different types` });
      continue;
    }
    const siblings = keys.filter((k) => k.table === key.table && k.target === key.target).length;
    add(key.table, toOneName(key.column), { model: key.target, from: key.column, to: targetColumn }, key);
    add(key.target, siblings > 1 ? `${key.table}_by_${key.column}` : key.table, { model: key.table, from: targetColumn, to: key.column, many: true }, key);
  }
  for (const [model, specs] of relations) schema[model] = { ...(schema[model] as ModelSpec), relations: specs };
}

function modelsOf(columns: readonly Column[], typeOf: (declared: string) => FieldType | null, keys: readonly ForeignKey[]): IntrospectedSchema {
  const schema: Record<string, ModelSpec> = {};
  const skipped: Skipped[] = [];
  const tables = [...new Set(columns.map((c) => c.table))];
  for (const table of tables) {
    if (!IDENTIFIER.test(table)) {
      skipped.push({ table, reason: "the table's name is not an identifier" });
      continue;
    }
    const own = columns.filter((c) => c.table === table);
    const keys = own.filter((c) => c.primaryKey);
    const key = keys[0];
    if (keys.length !== 1 || key === undefined) {
      skipped.push({ table, reason: keys.length === 0 ? "it has no primary key" : "its primary key spans several columns" });
      continue;
    }
    const fields: Record<string, FieldSpec> = {};
    for (const c of own) {
      const type = typeOf(c.type);
      if (!IDENTIFIER.test(c.name) || c.name === "__proto__") skipped.push({ table, column: c.name, reason: "the column's name is not an identifier" });
      else if (type === null) skipped.push({ table, column: c.name, reason: `its type ${c.type} is not one agentcap reads (integer, real, text, boolean)` });
      else fields[c.name] = { type, ...(c.nullable ? { nullable: true } : {}), ...(c.generated ? { generated: true } : {}) };
    }
    if (!Object.hasOwn(fields, key.name)) {
      skipped.push({ table, reason: `its primary key ${key.name} was skipped` });
      continue;
    }
    schema[table] = { table, primaryKey: key.name, fields };
  }
  addRelations(schema, keys, skipped);
  return { schema, skipped };
}

/**
 * Reads the schema of the database behind `connection`: SQLite's tables, or
 * the tables of the Postgres connection's current schema. The result can be
 * given to createSqlDatabase as is, or edited first (to rename models, or
 * mark keys `generated`).
 */
export async function introspectSchema(connection: { readonly sqlite: BetterSqlite3.Database } | { readonly postgres: Pool }): Promise<IntrospectedSchema> {
  if (Object.hasOwn(connection, "sqlite")) {
    const db = (connection as { sqlite: BetterSqlite3.Database }).sqlite;
    const columns = sqliteColumns(db);
    return modelsOf(columns, sqliteType, sqliteForeignKeys(db, [...new Set(columns.map((c) => c.table))]));
  }
  if (Object.hasOwn(connection, "postgres")) {
    const pool = (connection as { postgres: Pool }).postgres;
    return modelsOf(await postgresColumns(pool), (t) => (Object.hasOwn(POSTGRES_TYPES, t) ? (POSTGRES_TYPES[t] as FieldType) : null), await postgresForeignKeys(pool));
  }
  throw new InvalidInput("introspectSchema needs a database: { sqlite: <better-sqlite3 Database> } or { postgres: <pg Pool> }");
}
