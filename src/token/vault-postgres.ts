import type pg from "pg";
import { ForeignFailure, InvalidInput } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { IDENTIFIER } from "./postgres-schema.js";
import { createVault, type CredentialVault, type VaultOptions, type VaultRow } from "./vault.js";

/** Where the Postgres vault lives, and how it is sealed. */
export interface PostgresVaultOptions extends VaultOptions {
  readonly connectionString: string;
  /** The schema its table lives in (default "agentcap", the token store's). */
  readonly schema?: string;
}

interface Row {
  readonly principal: string;
  readonly origin: string;
  readonly key_id: string;
  readonly sealed: string;
  readonly updated_at: string;
}

const rowOf = (r: Row): VaultRow => ({ principal: r.principal, origin: r.origin, keyId: r.key_id, sealed: r.sealed, updatedAt: Number(r.updated_at) });

/**
 * The credential vault in a Postgres schema, by default the token store's:
 * shared by every gateway process and the `agentcap credentials` command.
 * Throws VaultKeyMissing without a key, before connecting.
 */
export async function openPostgresVault(options: PostgresVaultOptions): Promise<CredentialVault> {
  const schema = options.schema ?? "agentcap";
  if (!IDENTIFIER.test(schema)) throw new InvalidInput(`schema ${JSON.stringify(schema)} must be a lower-case identifier of at most 41 characters`);
  if (typeof options.connectionString !== "string" || options.connectionString.length === 0) throw new InvalidInput("openPostgresVault needs connectionString");
  const table = `${schema}.credentials`;
  let pool: pg.Pool | null = null;
  const rows = {
    get: async (principal: string, origin: string) => {
      const r = (await (pool as pg.Pool).query<Row>(`SELECT principal, origin, key_id, sealed, updated_at FROM ${table} WHERE principal = $1 AND origin = $2`, [principal, origin])).rows[0];
      return r === undefined ? null : rowOf(r);
    },
    put: async (row: VaultRow) => {
      await (pool as pg.Pool).query(
        `INSERT INTO ${table} (principal, origin, key_id, sealed, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (principal, origin) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
        [row.principal, row.origin, row.keyId, row.sealed, row.updatedAt],
      );
    },
    delete: async (principal: string, origin: string) => ((await (pool as pg.Pool).query(`DELETE FROM ${table} WHERE principal = $1 AND origin = $2`, [principal, origin])).rowCount ?? 0) > 0,
    all: async () => (await (pool as pg.Pool).query<Row>(`SELECT principal, origin, key_id, sealed, updated_at FROM ${table} ORDER BY principal, origin`)).rows.map(rowOf),
    close: () => (pool as pg.Pool).end(),
  };
  // The key is checked before anything connects.
  const vault = createVault(rows, options);
  const { Pool } = requireOptional("pg", "the Postgres credential vault") as typeof pg;
  pool = new Pool({ connectionString: options.connectionString, max: 2, application_name: `agentcap-credentials:${schema}` });
  try {
    const client = await pool.connect();
    try {
      // Two processes creating the table at once would collide: IF NOT EXISTS is not safe against that, a lock is.
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`agentcap.credentials:${schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
        principal TEXT NOT NULL, origin TEXT NOT NULL, key_id TEXT NOT NULL, sealed TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (principal, origin))`);
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  } catch (e) {
    await pool.end();
    throw new ForeignFailure(`cannot open the Postgres credential vault in schema ${schema}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return vault;
}
