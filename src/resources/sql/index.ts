/**
 * `agentcap/sql`: the confined SQL database. Structured queries only, the row
 * scope injected from the capability chain, compiled to parameterized SQL for
 * SQLite (better-sqlite3) or PostgreSQL (pg), loaded only when used.
 */
export { createSqlDatabase } from "./database.js";
export type { DbCapability, Page, PageQuery, Row, SqlConnection, SqlDatabase, SqlDatabaseOptions, SqlLimits, WriteResult } from "./database.js";
export type { AggregateQuery, AggregateSpec, CreateQuery, DeleteQuery, FilterOps, OrderBy, ReadQuery, UpdateQuery, Where } from "./query.js";
export type { FieldSpec, FieldType, ModelSpec, SchemaSpec } from "./schema.js";
