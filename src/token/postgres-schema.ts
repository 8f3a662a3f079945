/**
 * The Postgres token store's tables, in one schema per deployment. Every
 * revocation row carries a sequence number, bumped on every change, so a
 * store catches up by reading what is newer than what it has seen, whether
 * a notification told it to or its polling did.
 */
import type pg from "pg";
import { TARGET_KINDS } from "./store.js";

/** A lower-case SQL identifier: schema names are spliced into statements, so nothing else is accepted. */
export const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/;

/** The statements that create the schema, in order; each is idempotent. */
export function schemaStatements(schema: string): readonly string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${schema}`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_store (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE SEQUENCE IF NOT EXISTS ${schema}.token_revocation_seq`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_revoked (
      kind TEXT NOT NULL CHECK (kind IN (${TARGET_KINDS.map((k) => `'${k}'`).join(", ")})), id TEXT NOT NULL, reason TEXT NOT NULL,
      revoked_at BIGINT NOT NULL, reinstated_at BIGINT, expires_at BIGINT,
      seq BIGINT NOT NULL DEFAULT nextval('${schema}.token_revocation_seq'), PRIMARY KEY (kind, id))`,
    `CREATE INDEX IF NOT EXISTS token_revoked_seq ON ${schema}.token_revoked (seq)`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_listeners (owner TEXT PRIMARY KEY, seen BIGINT NOT NULL, heartbeat TIMESTAMPTZ NOT NULL DEFAULT now())`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_usage (key TEXT PRIMARY KEY, calls BIGINT NOT NULL, cost DOUBLE PRECISION NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_allowance (
      key TEXT PRIMARY KEY, max_calls BIGINT, max_cost DOUBLE PRECISION,
      calls_spent BIGINT NOT NULL DEFAULT 0, cost_spent DOUBLE PRECISION NOT NULL DEFAULT 0)`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_leases (
      key TEXT NOT NULL REFERENCES ${schema}.token_allowance (key), owner TEXT NOT NULL,
      calls_held BIGINT NOT NULL, cost_held DOUBLE PRECISION NOT NULL,
      calls_armed BIGINT NOT NULL, cost_armed DOUBLE PRECISION NOT NULL,
      expires_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (key, owner))`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_rate_keys (key TEXT PRIMARY KEY)`,
    `CREATE TABLE IF NOT EXISTS ${schema}.token_rate_slots (
      id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL REFERENCES ${schema}.token_rate_keys (key), owner TEXT NOT NULL,
      calls BIGINT, cost DOUBLE PRECISION, until TIMESTAMPTZ NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS token_rate_slots_key ON ${schema}.token_rate_slots (key, until)`,
  ];
}

/**
 * Creates the schema under an advisory lock (IF NOT EXISTS is not safe
 * against a second process creating the same tables at the same moment),
 * and returns the store's persistent id, made on first use.
 */
export async function createSchema(client: pg.Client, schema: string, newId: string): Promise<string> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`agentcap.tokens:${schema}`]);
    for (const statement of schemaStatements(schema)) await client.query(statement);
    await client.query(`INSERT INTO ${schema}.token_store (name, value) VALUES ('id', $1) ON CONFLICT (name) DO NOTHING`, [newId]);
    const row = (await client.query<{ value: string }>(`SELECT value FROM ${schema}.token_store WHERE name = 'id'`)).rows[0];
    await client.query("COMMIT");
    return (row as { value: string }).value;
  } catch (e) {
    await client.query("ROLLBACK");
    throw e;
  }
}
