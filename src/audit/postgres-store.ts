import { Kysely, PostgresDialect, sql, type Transaction } from "kysely";
import type pg from "pg";
import { AuditFailure, InvalidInput } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { planAppend, type AppendPlan } from "./append-plan.js";
import type { EncodedEvent } from "./encoding.js";
import { loadLinks } from "./query.js";
import { Frontier, frontierSlots } from "./merkle.js";
import { AUDIT_TABLES, DEFAULT_POSTGRES_SCHEMA, INDEXES, type AuditDb } from "./schema.js";
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
const ROWS_PER_INSERT = 1000;

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
  // An idle client losing its connection must not crash the process; the next query reports the failure.
  pool.on("error", () => undefined);
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
    append: options.readOnly
      ? () => Promise.reject(new AuditFailure(`the Postgres audit log in schema ${schema} was opened read-only`))
      : appender(db, schema),
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
    for (const i of INDEXES) {
      // Index definitions are constants of this module, never input.
      await sql`CREATE ${sql.raw(i.unique ? "UNIQUE " : "")}INDEX IF NOT EXISTS ${sql.id(i.name)} ON ${s}.audit_events (${sql.raw(i.columns)})${sql.raw(i.where ? ` WHERE ${i.where}` : "")}`.execute(trx);
    }
    await sql`CREATE OR REPLACE FUNCTION ${s}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`.execute(trx);
    for (const table of AUDIT_TABLES) {
      await sql`CREATE OR REPLACE TRIGGER ${sql.id(`${table}_append_only`)} BEFORE UPDATE OR DELETE OR TRUNCATE ON ${s}.${sql.id(table)}
        FOR EACH STATEMENT EXECUTE FUNCTION ${s}.audit_append_only()`.execute(trx);
    }
  });
}

function appender(db: Kysely<AuditDb>, schema: string): AuditBackend["append"] {
  // The tree's right edge as this process last left it; reloaded when another process appended since.
  let frontier = new Frontier();
  return async (batch) => {
    const plan = await db.transaction().execute((trx) => appendIn(trx, schema, batch, frontier));
    frontier = plan.frontier;
    return { results: plan.results, size: frontier.size, root: frontier.root() };
  };
}

async function loadFrontier(trx: Transaction<AuditDb>, size: number): Promise<Frontier> {
  const nodes = [];
  for (const { level, index } of frontierSlots(size)) {
    const row =
      level === 0
        ? await trx.selectFrom("audit_events").select("leaf as hash").where("seq", "=", index + 1).executeTakeFirst()
        : await trx.selectFrom("audit_tree").select("hash").where("level", "=", level).where("idx", "=", index).executeTakeFirst();
    if (row === undefined) throw new AuditFailure(`the audit log's Merkle tree lacks the subtree at level ${String(level)}, index ${String(index)}; run verify`);
    nodes.push({ level, hash: Buffer.from(row.hash, "hex") });
  }
  return new Frontier(size, nodes);
}

async function appendIn(trx: Transaction<AuditDb>, schema: string, batch: readonly EncodedEvent[], known: Frontier): Promise<AppendPlan> {
  // Blocks other writers (they would fork the chain), not readers.
  await sql`LOCK TABLE ${sql.id(schema, "audit_events")} IN SHARE ROW EXCLUSIVE MODE`.execute(trx);
  const head = (await trx.selectFrom("audit_events").select(["seq", "hash"]).orderBy("seq", "desc").limit(1).executeTakeFirst()) ?? null;
  const size = head?.seq ?? 0;
  const frontier = known.size === size ? known.copy() : await loadFrontier(trx, size);
  const existing = new Set<string>();
  for (let i = 0; i < batch.length; i += ROWS_PER_INSERT) {
    const chunk = batch.slice(i, i + ROWS_PER_INSERT);
    const rows = await trx.selectFrom("audit_events").select(["id", "phase"]).where("id", "in", chunk.map((e) => e.columns.id)).execute();
    for (const r of rows) existing.add(`${r.id}/${String(r.phase)}`);
  }
  const links = await loadLinks(
    trx,
    batch.flatMap((e) => e.links.map((l) => l.id)),
  );
  const last = await trx.selectFrom("audit_links").select((eb) => eb.fn.max("num").as("num")).executeTakeFirst();
  const plan = planAppend(head, frontier, batch, {
    hasEntry: (id, phase) => existing.has(`${id}/${String(phase)}`),
    link: (id) => links.get(id),
    lastLinkNum: last?.num ?? 0,
  });
  for (let i = 0; i < plan.links.length; i += ROWS_PER_INSERT) {
    await trx.insertInto("audit_links").values(plan.links.slice(i, i + ROWS_PER_INSERT)).execute();
  }
  for (let i = 0; i < plan.events.length; i += ROWS_PER_INSERT) {
    await trx.insertInto("audit_events").values(plan.events.slice(i, i + ROWS_PER_INSERT)).execute();
  }
  for (let i = 0; i < plan.eventLinks.length; i += ROWS_PER_INSERT * 4) {
    await trx.insertInto("audit_event_links").values(plan.eventLinks.slice(i, i + ROWS_PER_INSERT * 4)).execute();
  }
  for (let i = 0; i < plan.tree.length; i += ROWS_PER_INSERT * 4) {
    await trx.insertInto("audit_tree").values(plan.tree.slice(i, i + ROWS_PER_INSERT * 4)).execute();
  }
  return plan;
}
