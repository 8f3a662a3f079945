import { Kysely, PostgresDialect, sql } from "kysely";
import type pg from "pg";
import { AuditFailure, InvalidInput } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { planAppend } from "./append-plan.js";
import type { ChainHead } from "./chain.js";
import { Frontier, frontierSlots } from "./merkle.js";
import { AUDIT_TABLES, DEFAULT_POSTGRES_SCHEMA, INDEXES, staleIndexes, type AuditDb } from "./schema.js";
import { requireCurrentFormat, type AuditBackend } from "./store.js";

/** Options of the shared Postgres log. */
export interface PostgresBackendOptions {
  /** A connection string such as postgres://user@host:5432/db. */
  readonly url: string;
  /** The schema holding the log's tables (default `agentcap_audit`); created if missing. */
  readonly schema?: string;
  /** Only query and verify; never create or write. */
  readonly readOnly?: boolean;
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  /**
   * `"on"` (default) waits for each commit to reach the server's disk (and
   * its synchronous standbys); `"off"` lets the server acknowledge before its
   * WAL is flushed: a server crash may lose the last commits (never corrupt
   * the log), and writes are faster.
   */
  readonly synchronousCommit?: "on" | "off";
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Opens (creating if needed) the Postgres log. Writers from any number of
 * processes serialize on a table lock held for one batch transaction, so the
 * chain stays single; readers are never blocked by it.
 */
export async function openPostgresBackend(options: PostgresBackendOptions): Promise<AuditBackend> {
  const schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
  if (!IDENTIFIER.test(schema)) throw new InvalidInput(`Postgres schema ${JSON.stringify(schema)} must be a lowercase identifier (letters, digits, _)`);
  const driver = requireOptional("pg", "the Postgres audit store") as typeof pg;
  const pool = new driver.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    ...(options.synchronousCommit === "off" ? { options: "-c synchronous_commit=off" } : {}),
    // Sequence numbers and times are bigint columns well inside 2^53: read them as numbers, on this pool only.
    types: { getTypeParser: (oid, format): unknown => (oid === driver.types.builtins.INT8 ? Number : driver.types.getTypeParser(oid, format) as unknown) },
  });
  // A client losing its connection must not crash the process, idle or checked out between the queries of a batch (the pool
  // listens only to idle ones); the query waiting on it, or the next, reports the failure, and the pool connects anew.
  pool.on("error", () => undefined);
  pool.on("connect", (client) => {
    client.on("error", () => undefined);
  });
  const db = new Kysely<AuditDb>({ dialect: new PostgresDialect({ pool }) }).withSchema(schema);
  try {
    const columns = await sql<{ column_name: string }>`SELECT column_name FROM information_schema.columns WHERE table_schema = ${schema} AND table_name = 'audit_events'`.execute(db);
    requireCurrentFormat(columns.rows.map((r) => r.column_name), `the Postgres audit log in schema ${schema}`);
    if (options.readOnly) await db.selectFrom("audit_events").select("seq").limit(1).execute();
    else await createSchema(db, schema);
  } catch (e) {
    await db.destroy();
    throw new AuditFailure(`cannot open the Postgres audit log in schema ${schema}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return Object.freeze({
    kind: "postgres" as const,
    db,
    writable: options.readOnly !== true,
    append: options.readOnly
      ? () => Promise.reject(new AuditFailure(`the Postgres audit log in schema ${schema} was opened read-only`))
      : appender(pool, schema),
    prune: options.readOnly ? () => Promise.reject(new AuditFailure(`the Postgres audit log in schema ${schema} was opened read-only`)) : pruner(pool, schema),
    close: () => db.destroy(),
  });
}

async function createSchema(db: Kysely<AuditDb>, schema: string): Promise<void> {
  const s = sql.id(schema);
  await db.transaction().execute(async (trx) => {
    // Two processes creating the same log at once would race on the catalog.
    await sql`SELECT pg_advisory_xact_lock(hashtext(${`agentcap.audit:${schema}`}))`.execute(trx);
    await sql`CREATE SCHEMA IF NOT EXISTS ${s}`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS ${s}.audit_events (
      seq bigint PRIMARY KEY,
      id text NOT NULL,
      phase smallint NOT NULL,
      at bigint NOT NULL,
      tool text,
      action text NOT NULL,
      resource text COLLATE "C",
      allowed smallint NOT NULL,
      principal text NOT NULL,
      request_id text NOT NULL,
      tenant text,
      capability_hash text NOT NULL,
      session_id text,
      task_id text,
      body text NOT NULL,
      leaf text NOT NULL,
      prev_hash text NOT NULL,
      hash text NOT NULL
    )`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS ${s}.audit_links (num bigint PRIMARY KEY, id text NOT NULL UNIQUE, summary text NOT NULL)`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS ${s}.audit_event_links (
      link_num bigint NOT NULL,
      event_seq bigint NOT NULL,
      position integer NOT NULL,
      PRIMARY KEY (link_num, event_seq)
    )`.execute(trx);
    await sql`CREATE INDEX IF NOT EXISTS audit_event_links_seq ON ${s}.audit_event_links (event_seq, position)`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS ${s}.audit_tree (level integer NOT NULL, idx bigint NOT NULL, hash text NOT NULL, PRIMARY KEY (level, idx))`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS ${s}.audit_retention (up_to bigint PRIMARY KEY, note text NOT NULL, at bigint NOT NULL)`.execute(trx);
    // An index an earlier version made under another condition is made again (Postgres prints the condition after WHERE).
    const existing = await sql<{ name: string; def: string }>`SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = ${schema} AND tablename = 'audit_events'`.execute(trx);
    const conditions = existing.rows.map((r) => ({ name: r.name, where: / WHERE (.*)$/s.exec(r.def)?.[1] ?? null }));
    for (const name of staleIndexes(conditions)) await sql`DROP INDEX ${s}.${sql.id(name)}`.execute(trx);
    for (const i of INDEXES) {
      // Index definitions are constants of this module, never input.
      await sql`CREATE ${sql.raw(i.unique ? "UNIQUE " : "")}INDEX IF NOT EXISTS ${sql.id(i.name)} ON ${s}.audit_events (${sql.raw(i.columns)})${sql.raw(i.where ? ` WHERE ${i.where}` : "")}`.execute(trx);
    }
    // A prune by retention deletes with agentcap.audit_prune set for its own transaction only (see pruner).
    await sql`CREATE OR REPLACE FUNCTION ${s}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME <> 'audit_retention' AND current_setting('agentcap.audit_prune', true) = 'on' THEN RETURN NULL; END IF;
        RAISE EXCEPTION 'the audit log is append-only';
      END $$`.execute(trx);
    for (const table of AUDIT_TABLES) {
      await sql`CREATE OR REPLACE TRIGGER ${sql.id(`${table}_append_only`)} BEFORE UPDATE OR DELETE OR TRUNCATE ON ${s}.${sql.id(table)}
        FOR EACH STATEMENT EXECUTE FUNCTION ${s}.audit_append_only()`.execute(trx);
    }
  });
}

/**
 * Prunes in one transaction holding the writers' lock, with the setting the
 * append-only trigger lets deletes through under set for that transaction
 * alone.
 */
function pruner(pool: pg.Pool, schema: string): AuditBackend["prune"] {
  const t = (table: string) => `"${schema}"."${table}"`;
  return async (rows) => {
    const client = await pool.connect();
    let done = false;
    try {
      await client.query(`BEGIN; LOCK TABLE ${t("audit_events")} IN SHARE ROW EXCLUSIVE MODE; SET LOCAL agentcap.audit_prune = 'on'`);
      await client.query(`INSERT INTO ${t("audit_retention")} (up_to, note, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [rows.record.up_to, rows.record.note, rows.record.at]);
      if (rows.leaf !== null) await client.query(`INSERT INTO ${t("audit_tree")} (level, idx, hash) VALUES (0, $1, $2) ON CONFLICT DO NOTHING`, [rows.leaf.index, rows.leaf.hash]);
      const deleted = (await client.query(`DELETE FROM ${t("audit_events")} WHERE seq <= $1`, [rows.upTo])).rowCount ?? 0;
      await client.query(`DELETE FROM ${t("audit_event_links")} WHERE event_seq <= $1`, [rows.upTo]);
      await client.query(
        `DELETE FROM ${t("audit_tree")} WHERE level > 0 AND ((idx + 1) << level) <= $1 AND NOT ((level, idx) IN (SELECT * FROM unnest($2::int[], $3::bigint[])))`,
        [rows.upTo, rows.keep.map((k) => k.level), rows.keep.map((k) => k.index)],
      );
      await client.query(`DELETE FROM ${t("audit_tree")} WHERE level = 0 AND idx < $1`, [rows.upTo - 1]);
      await client.query(`DELETE FROM ${t("audit_links")} l WHERE NOT EXISTS (SELECT 1 FROM ${t("audit_event_links")} x WHERE x.link_num = l.num)`);
      await client.query("COMMIT");
      done = true;
      return deleted;
    } finally {
      if (!done) await client.query("ROLLBACK").catch(() => undefined);
      client.release(!done);
    }
  };
}

/** What the log holds that a batch must be planned against, read in one statement under the write lock. */
interface LockedState {
  readonly head: ChainHead | null;
  readonly lastLinkNum: number;
  /** `id/phase` of the batch's entries already in the log. */
  readonly existing: readonly string[];
  readonly links: readonly { readonly num: number; readonly id: string; readonly summary: string }[];
}

/**
 * Appends each batch in one transaction of four round trips: BEGIN with
 * the write lock, one statement reading what the batch is planned against
 * (head, last link key, entries and links already logged, and the tree's
 * right edge when another process appended since), one statement inserting
 * every row (links, entries, lineage index, tree), and COMMIT. Rows travel
 * as JSON and are expanded by the server, so a batch of any size is one
 * statement with four parameters.
 */
function appender(pool: pg.Pool, schema: string): AuditBackend["append"] {
  // The tree's right edge as this process last left it; reloaded when another process appended since.
  let frontier = new Frontier();
  const t = (table: string) => `"${schema}"."${table}"`;
  const read = `SELECT
      (SELECT json_build_object('seq', seq, 'hash', hash) FROM ${t("audit_events")} ORDER BY seq DESC LIMIT 1) AS head,
      (SELECT coalesce(max(num), 0) FROM ${t("audit_links")}) AS "lastLinkNum",
      (SELECT coalesce(json_agg(id || '/' || phase), '[]') FROM ${t("audit_events")} WHERE id = ANY($1::text[])) AS existing,
      (SELECT coalesce(json_agg(json_build_object('num', num, 'id', id, 'summary', summary)), '[]') FROM ${t("audit_links")} WHERE id = ANY($2::text[])) AS links`;
  const write = `WITH
      l AS (INSERT INTO ${t("audit_links")} SELECT * FROM json_populate_recordset(null::${t("audit_links")}, $1)),
      e AS (INSERT INTO ${t("audit_events")} SELECT * FROM json_populate_recordset(null::${t("audit_events")}, $2)),
      x AS (INSERT INTO ${t("audit_event_links")} SELECT * FROM json_populate_recordset(null::${t("audit_event_links")}, $3))
    INSERT INTO ${t("audit_tree")} SELECT * FROM json_populate_recordset(null::${t("audit_tree")}, $4)`;
  const slots = `SELECT s.level, s.idx, CASE WHEN s.level = 0 THEN (SELECT leaf FROM ${t("audit_events")} WHERE seq = s.idx + 1)
      ELSE (SELECT hash FROM ${t("audit_tree")} WHERE level = s.level AND idx = s.idx) END AS hash
    FROM unnest($1::int[], $2::bigint[]) AS s(level, idx)`;

  const loadFrontier = async (client: pg.PoolClient, size: number): Promise<Frontier> => {
    const wanted = frontierSlots(size);
    const { rows } = await client.query<{ level: number; idx: number; hash: string | null }>(slots, [wanted.map((w) => w.level), wanted.map((w) => w.index)]);
    return new Frontier(
      size,
      rows.map((r) => {
        if (r.hash === null) throw new AuditFailure(`the audit log's Merkle tree lacks the subtree at level ${String(r.level)}, index ${String(r.idx)}; run verify`);
        return { level: r.level, hash: Buffer.from(r.hash, "hex") };
      }),
    );
  };

  return async (batch) => {
    const client = await pool.connect();
    let done = false;
    try {
      // Blocks other writers (they would fork the chain), not readers.
      await client.query(`BEGIN; LOCK TABLE ${t("audit_events")} IN SHARE ROW EXCLUSIVE MODE`);
      const linkIds = [...new Set(batch.flatMap((e) => e.links.map((l) => l.id)))];
      const state = (await client.query<LockedState>(read, [batch.map((e) => e.columns.id), linkIds])).rows[0] as LockedState;
      const size = state.head?.seq ?? 0;
      const tree = frontier.size === size ? frontier.copy() : await loadFrontier(client, size);
      const existing = new Set(state.existing);
      const links = new Map(state.links.map((l) => [l.id, { num: l.num, text: l.summary }]));
      const plan = planAppend(state.head, tree, batch, {
        hasEntry: (id, phase) => existing.has(`${id}/${String(phase)}`),
        link: (id) => links.get(id),
        lastLinkNum: state.lastLinkNum,
      });
      await client.query(write, [JSON.stringify(plan.links), JSON.stringify(plan.events), JSON.stringify(plan.eventLinks), JSON.stringify(plan.tree)]);
      await client.query("COMMIT");
      done = true;
      frontier = plan.frontier;
      return { results: plan.results, size: frontier.size, root: frontier.root() };
    } finally {
      if (!done) await client.query("ROLLBACK").catch(() => undefined);
      client.release(!done);
    }
  };
}
