import type * as Drizzle from "drizzle-orm";
import type * as DrizzleCasing from "drizzle-orm/casing";
import type * as DrizzlePg from "drizzle-orm/pg-core";
import type * as DrizzleSqlite from "drizzle-orm/sqlite-core";
import { importOptional } from "../../kernel/internal.js";

/*
 * The application's Drizzle definitions, read through drizzle-orm's own
 * public API (an optional peer dependency, loaded on first use) into plain
 * data: the tables (`getTableConfig` of sqlite-core or pg-core,
 * `getTableColumns` for the keys the application gave its columns), the
 * relations declared with `relations()` (resolved by drizzle-orm's
 * `normalizeRelation`, exactly as its relational queries resolve them), and
 * the column names its `casing` option gives columns declared without one.
 * Nothing here decides what agentcap can express; drizzle-import.ts does.
 */

/** A column as Drizzle declares it. */
export interface DrizzleColumn {
  /** The key the application gave it in the table's definition. */
  readonly key: string;
  /** Its name in the database (after `casing`, for a column declared without a name). */
  readonly name: string;
  /** Drizzle's column class, such as `SQLiteInteger`, `PgTimestamp`, `PgEnumColumn`. */
  readonly kind: string;
  /** Its SQL type as Drizzle declares it to the database, such as `integer`, `jsonb`, `text[]`. */
  readonly sqlType: string;
  readonly notNull: boolean;
  readonly primary: boolean;
  /** SQLite's `primaryKey({ autoIncrement: true })`. */
  readonly autoIncrement: boolean;
  /** Postgres `generatedAlwaysAsIdentity()` / `generatedByDefaultAsIdentity()`. */
  readonly identity: boolean;
  /** `generatedAlwaysAs(...)`: computed by the database. */
  readonly computed: boolean;
}

/** A relation from `relations()`, resolved to the columns on each side, or the reason it cannot be. */
export type DrizzleRelation =
  | {
      readonly name: string;
      readonly many: boolean;
      /** The key of the table it reaches among the definitions, or null when that table is not among them. */
      readonly target: string | null;
      readonly targetTable: string;
      /** Column keys on this table and on the target, pairwise. */
      readonly from: readonly string[];
      readonly to: readonly string[];
    }
  | { readonly name: string; readonly problem: string };

export interface DrizzleTable {
  /** The key the application gave the table among its definitions. */
  readonly key: string;
  readonly name: string;
  /** The Postgres schema of a `pgSchema(...).table`, or null. */
  readonly schema: string | null;
  readonly dialect: "sqlite" | "postgres";
  /** In declaration order. */
  readonly columns: readonly DrizzleColumn[];
  /** The keys of its primary key's columns, from the columns and from a `primaryKey({ columns })` of its own. */
  readonly primaryKey: readonly string[];
  readonly relations: readonly DrizzleRelation[];
}

export interface DrizzleDefinitions {
  readonly tables: readonly DrizzleTable[];
  /** Tables of another dialect (MySQL, SingleStore, Gel): key and Drizzle's class. */
  readonly foreign: readonly { readonly key: string; readonly kind: string }[];
  /** Views: key and name. */
  readonly views: readonly { readonly key: string; readonly name: string }[];
}

/** The casings Drizzle's `casing` option takes. */
export type DrizzleCasingName = "snake_case" | "camelCase";

interface Modules {
  readonly orm: typeof Drizzle;
  readonly sqlite: typeof DrizzleSqlite;
  readonly pg: typeof DrizzlePg;
  readonly casing: typeof DrizzleCasing;
}

async function load(): Promise<Modules> {
  const neededFor = "importing Drizzle table definitions";
  const [orm, sqlite, pg, casing] = await Promise.all([
    importOptional<typeof Drizzle>("drizzle-orm", neededFor),
    importOptional<typeof DrizzleSqlite>("drizzle-orm/sqlite-core", neededFor),
    importOptional<typeof DrizzlePg>("drizzle-orm/pg-core", neededFor),
    importOptional<typeof DrizzleCasing>("drizzle-orm/casing", neededFor),
  ]);
  return { orm, sqlite, pg, casing };
}

function columnOf(key: string, column: Drizzle.Column, casing: DrizzleCasing.CasingCache): DrizzleColumn {
  return {
    key,
    name: casing.getColumnCasing(column),
    kind: column.columnType,
    sqlType: column.getSQLType(),
    notNull: column.notNull,
    primary: column.primary,
    autoIncrement: (column as { autoIncrement?: unknown }).autoIncrement === true,
    identity: column.generatedIdentity !== undefined,
    computed: column.generated !== undefined,
  };
}

/** The key under which `table` lists `column`, or null. */
function keyOf(m: Modules, table: Drizzle.Table, column: Drizzle.Column): string | null {
  for (const [key, c] of Object.entries(m.orm.getTableColumns(table))) if (c === column) return key;
  return null;
}

function relationsOf(m: Modules, given: Readonly<Record<string, unknown>>, keys: ReadonlyMap<string, string>): Map<string, DrizzleRelation[]> {
  const { tables, tableNamesMap } = m.orm.extractTablesRelationalConfig(given, m.orm.createTableRelationsHelpers);
  const out = new Map<string, DrizzleRelation[]>();
  for (const [key, config] of Object.entries(tables)) {
    const list: DrizzleRelation[] = [];
    for (const [name, relation] of Object.entries(config.relations)) {
      const targetTable = m.orm.getTableName(relation.referencedTable);
      let resolved: Drizzle.NormalizedRelation;
      try {
        resolved = m.orm.normalizeRelation(tables, tableNamesMap, relation);
      } catch (e) {
        // Drizzle's own words: the target is not among the definitions, or the two sides do not say how they join.
        list.push({ name, problem: e instanceof Error ? e.message : String(e) });
        continue;
      }
      const target = keys.get(m.orm.getTableUniqueName(relation.referencedTable)) ?? null;
      const from = resolved.fields.map((c) => keyOf(m, relation.sourceTable, c));
      const to = resolved.references.map((c) => keyOf(m, relation.referencedTable, c));
      if (from.includes(null) || to.includes(null)) {
        list.push({ name, problem: "its fields or references are not columns of the two tables it joins" });
        continue;
      }
      list.push({ name, many: m.orm.is(relation, m.orm.Many), target, targetTable, from: from as string[], to: to as string[] });
    }
    out.set(key, list);
  }
  return out;
}

/**
 * Reads the tables, views and relations among `definitions` (the
 * application's schema module, or any record of its exports). Values that
 * are neither (enums, sequences, schemas, validators) are passed over, as
 * Drizzle's own `drizzle({ schema })` does. MissingDependency without
 * drizzle-orm.
 */
export async function readDrizzleDefinitions(definitions: Readonly<Record<string, unknown>>, casingName: DrizzleCasingName | undefined): Promise<DrizzleDefinitions> {
  const m = await load();
  const casing = new m.casing.CasingCache(casingName);
  const given: Record<string, unknown> = {};
  const keys = new Map<string, string>();
  const tables: Omit<DrizzleTable, "relations">[] = [];
  const foreign: { key: string; kind: string }[] = [];
  const views: { key: string; name: string }[] = [];
  for (const [key, value] of Object.entries(definitions)) {
    const sqlite = m.orm.is(value, m.sqlite.SQLiteTable) ? m.sqlite.getTableConfig(value) : null;
    const pg = m.orm.is(value, m.pg.PgTable) ? m.pg.getTableConfig(value) : null;
    const config = sqlite ?? pg;
    if (config !== null && m.orm.is(value, m.orm.Table)) {
      const columns = Object.entries(m.orm.getTableColumns(value) as Record<string, Drizzle.Column>).map(([k, c]) => columnOf(k, c, casing));
      const primary = new Set(columns.filter((c) => c.primary).map((c) => c.key));
      for (const pk of config.primaryKeys) for (const c of pk.columns) primary.add(keyOf(m, value, c) ?? c.name);
      tables.push({ key, name: config.name, schema: pg?.schema ?? null, dialect: sqlite === null ? "postgres" : "sqlite", columns, primaryKey: [...primary] });
      given[key] = value;
      keys.set(m.orm.getTableUniqueName(value), key);
    } else if (m.orm.is(value, m.orm.Table)) {
      foreign.push({ key, kind: (value.constructor as unknown as Record<symbol, string>)[m.orm.entityKind] ?? "Table" });
    } else if (m.orm.is(value, m.orm.Relations)) {
      given[key] = value;
    } else if (m.orm.isView(value)) {
      views.push({ key, name: m.orm.getViewName(value) });
    }
  }
  const relations = tables.length === 0 ? new Map<string, DrizzleRelation[]>() : relationsOf(m, given, keys);
  return { tables: tables.map((t) => ({ ...t, relations: relations.get(t.key) ?? [] })), foreign, views };
}
