import type pg from "pg";
import { InvalidInput, type ApprovalEntry, type ApprovalStore, type ApprovalView } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { APPROVAL_STATUSES, entryOfRow, rowBody } from "./approval-rows.js";
import { IDENTIFIER } from "./postgres-schema.js";

/** Options of the Postgres approval store. */
export interface PostgresApprovalStoreOptions {
  readonly connectionString: string;
  /** The schema its table lives in (default "agentcap", the token store's). */
  readonly schema?: string;
}

interface Row {
  readonly id: string;
  readonly version: string | number;
  readonly body: string;
}

/**
 * Approval requests in a Postgres schema, shared by every process and
 * machine that opens it. Each change is one UPDATE guarded by the version it
 * read, so of two processes changing one request at once exactly one
 * succeeds and the other reads again.
 */
export async function openPostgresApprovalStore(options: PostgresApprovalStoreOptions): Promise<ApprovalStore> {
  const schema = options.schema ?? "agentcap";
  if (!IDENTIFIER.test(schema)) throw new InvalidInput(`schema ${JSON.stringify(schema)} must be a lower-case identifier of at most 41 characters`);
  if (typeof options.connectionString !== "string" || options.connectionString.length === 0) throw new InvalidInput("openPostgresApprovalStore needs connectionString");
  const { Pool } = requireOptional("pg", "the Postgres approval store") as typeof pg;
  const pool = new Pool({ connectionString: options.connectionString, max: 4, application_name: `agentcap-approvals:${schema}` });
  const table = `${schema}.approval_requests`;
  const client = await pool.connect();
  try {
    // Two processes creating the table at once would collide: IF NOT EXISTS is not safe against that, a lock is.
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`agentcap.approvals:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL CHECK (status IN (${APPROVAL_STATUSES.map((s) => `'${s}'`).join(", ")})),
      created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL)`);
    await client.query(`CREATE INDEX IF NOT EXISTS approval_requests_status ON ${table} (status, created_at)`);
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    client.release();
    await pool.end();
    throw e;
  }
  client.release();
  let closed = false;
  const query = async (text: string, values: readonly unknown[]) => {
    if (closed) throw new InvalidInput("the approval store is closed");
    return pool.query<Row>(text, [...values]);
  };
  const read = (r: Row) => entryOfRow(r.id, r.body, Number(r.version));
  return Object.freeze({
    insert: async (entry: Omit<ApprovalEntry, "version">) => {
      const v = entry.view;
      await query(`INSERT INTO ${table} (id, status, created_at, expires_at, version, body) VALUES ($1, $2, $3, $4, 1, $5)`, [v.id, v.status, v.createdAt, v.expiresAt, rowBody(entry, v)]);
    },
    get: async (id: string) => {
      const row = (await query(`SELECT id, version, body FROM ${table} WHERE id = $1`, [id])).rows[0];
      return row === undefined ? null : read(row);
    },
    list: async ({ all, limit }: { readonly all: boolean; readonly limit: number }) =>
      (await query(`SELECT id, version, body FROM ${table} ${all ? "" : "WHERE status = 'pending'"} ORDER BY created_at DESC, id LIMIT $1`, [limit])).rows.map(read),
    update: async (id: string, version: number, view: ApprovalView) => {
      const row = (await query(`SELECT id, version, body FROM ${table} WHERE id = $1`, [id])).rows[0];
      if (row === undefined) return false;
      const result = await query(`UPDATE ${table} SET status = $1, version = version + 1, body = $2 WHERE id = $3 AND version = $4`, [view.status, rowBody(read(row), view), id, version]);
      return result.rowCount === 1;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  });
}
