/**
 * `agentcap/sql`: the confined SQL database. Structured queries only, the row
 * scope injected from the capability chain, compiled to parameterized SQL for
 * SQLite (better-sqlite3) or PostgreSQL (pg), loaded only when used.
 */
export { createSqlDatabase } from "./database.ts";
export type { DbCapability, Row, SqlConnection, SqlDatabase, SqlDatabaseOptions, SqlLimits, WriteResult } from "./database.ts";
export type { CreateQuery, DeleteQuery, FilterOps, OrderBy, ReadQuery, UpdateQuery, Where } from "./query.ts";
export type { FieldSpec, FieldType, ModelSpec, SchemaSpec } from "./schema.ts";
