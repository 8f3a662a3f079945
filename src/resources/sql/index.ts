/**
 * `agentcap/sql`: the confined SQL database. Structured queries only, the row
 * scope injected from the capability chain, compiled to parameterized SQL for
 * SQLite (better-sqlite3) or PostgreSQL (pg), loaded only when used.
 */
export { createSqlDatabase } from "./database.js";
/** Grants checked against the schema before use: GrantSchemaMismatch lists every unknown model or field and every scope it cannot enforce. */
export { checkGrants, schemaCheckedPolicy } from "./grant-check.js";
/** The schema read from the live database (SQLite, Postgres); what it cannot express is listed as skipped, never guessed. */
export { introspectSchema } from "./introspect.js";
export type { IntrospectedSchema, Skipped } from "./introspect.js";
/** Model definitions from the application's Prisma schema (needs the optional @mrleebo/prisma-ast). */
export { schemaFromPrisma } from "./prisma-import.js";
/**
 * Model definitions from the application's Drizzle tables and relations() (needs the optional drizzle-orm):
 * every column mapped to the values the database holds, or refused by table and column (UnmappableSchema).
 */
export { schemaFromDrizzle } from "./drizzle-import.js";
export type { DrizzleImportOptions } from "./drizzle-import.js";
export type { DbCapability, Page, PageQuery, Row, SqlConnection, SqlDatabase, SqlDatabaseOptions, SqlLimits, WriteResult } from "./database.js";
export type { ExportFormat } from "./export.js";
export type { AggregateQuery, AggregateSpec, CreateQuery, DeleteQuery, FilterOps, OrderBy, ReadQuery, UpdateQuery, Where } from "./query.js";
export type { FieldSpec, FieldType, ModelSpec, RelationSpec, SchemaSpec } from "./schema.js";
