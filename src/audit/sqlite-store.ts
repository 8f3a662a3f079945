import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { requireOptional } from "../kernel/internal.js";
import { planAppend, type AppendPlan, type StoredLink } from "./append-plan.js";
import type { ChainHead } from "./chain.js";
import type { EncodedEvent } from "./encoding.js";
import { AuditFailure } from "../kernel/index.js";
import { Frontier, frontierSlots } from "./merkle.js";
import { AUDIT_TABLES, EVENT_COLUMNS, INDEXES, PRUNED_TABLES, staleIndexes, type AuditDb } from "./schema.js";
import { requireCurrentFormat, type AuditBackend, type Appended, type PruneRows } from "./store.js";

/** WAL pages between automatic checkpoints (SQLite's default is 1000). */
const WAL_CHECKPOINT_PAGES = 8000;

/** Where the SQLite audit log lives unless told otherwise, relative to the working directory. */
export const DEFAULT_SQLITE_PATH = ".agentcap/audit.db";

/** Options of the embedded SQLite log. */
export interface SqliteBackendOptions {
  /** The database file (default `.agentcap/audit.db` under the working directory); its directory is created. */
  readonly path?: string;
  /** Open an existing log for queries and verification only. */
  readonly readOnly?: boolean;
  /**
   * `"full"` (default) syncs the write-ahead log at every commit, so a
   * resolved write survives a power cut; `"normal"` survives a crash of the
   * process only, and is faster.
   */
  readonly synchronous?: "full" | "normal";
  /** How long a writer waits for another process holding the write lock (default 5000 ms). */
  readonly busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  phase INTEGER NOT NULL,
  at INTEGER NOT NULL,
  tool TEXT,
  action TEXT NOT NULL,
  resource TEXT,
  allowed INTEGER NOT NULL,
  principal TEXT NOT NULL,
  request_id TEXT NOT NULL,
  tenant TEXT,
  capability_hash TEXT NOT NULL,
  session_id TEXT,
  task_id TEXT,
  body TEXT NOT NULL,
  leaf TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS audit_links (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, summary TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS audit_event_links (
  link_num INTEGER NOT NULL,
  event_seq INTEGER NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (link_num, event_seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_event_links_seq ON audit_event_links (event_seq, position);
CREATE TABLE IF NOT EXISTS audit_tree (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (level, idx)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_retention (up_to INTEGER PRIMARY KEY, note TEXT NOT NULL, at INTEGER NOT NULL) STRICT;
${INDEXES.map((i) => `CREATE ${i.unique ? "UNIQUE " : ""}INDEX IF NOT EXISTS ${i.name} ON audit_events (${i.columns})${i.where ? ` WHERE ${i.where}` : ""};`).join("\n")}
${AUDIT_TABLES.map((t) => `CREATE TRIGGER IF NOT EXISTS ${t}_no_update BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;\n${noDelete(t)}`).join("\n")}
`;

/** The trigger refusing deletes on `table`; a prune by retention drops it and makes it again within its own transaction. */
function noDelete(table: string): string {
  return `CREATE TRIGGER IF NOT EXISTS ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;`;
}

/**
 * Opens (creating if needed) the SQLite log: WAL mode, one write transaction
 * per batch taken with BEGIN IMMEDIATE, so several processes appending to
 * one file still build a single chain. Triggers refuse UPDATE and DELETE.
 */
export function openSqliteBackend(options: SqliteBackendOptions = {}): AuditBackend {
  // ":memory:" is SQLite's name for a private in-memory database, not a file to create.
  const inMemory = options.path === ":memory:";
  const path = inMemory ? ":memory:" : resolve(options.path ?? DEFAULT_SQLITE_PATH);
  const readOnly = options.readOnly ?? false;
  const Driver = requireOptional("better-sqlite3", "the SQLite audit store") as typeof Database;
  let db: Database.Database;
  try {
    if (!readOnly && !inMemory) mkdirSync(dirname(path), { recursive: true });
    db = new Driver(path, { readonly: readOnly, fileMustExist: readOnly });
    db.pragma(`busy_timeout = ${String(options.busyTimeoutMs ?? 5000)}`);
    requireCurrentFormat((db.prepare("SELECT name FROM pragma_table_info('audit_events')").all() as { name: string }[]).map((c) => c.name), `the SQLite audit log at ${path}`);
    if (!readOnly) {
      db.pragma("journal_mode = WAL");
      db.pragma("cache_size = -2000");
      db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
      // Every append rewrites the same few pages (the right edge of the table and of each
      // index), so checkpointing less often copies each of them back far fewer times per
      // event. Durability is the WAL's at every commit either way; only the copy to the
      // main file is batched.
      db.pragma(`wal_autocheckpoint = ${String(WAL_CHECKPOINT_PAGES)}`);
      // Under the write lock, so that two processes opening one log at once neither race on
      // the catalog nor see an index of an earlier version dropped and not yet made again.
      db.transaction(() => {
        for (const name of staleIndexes(indexConditions(db))) db.exec(`DROP INDEX ${name}`);
        db.exec(SCHEMA);
      }).immediate();
      // Refreshes the planner's statistics when they are missing or stale, so it picks the selective index.
      db.pragma("optimize = 0x10002");
    }
  } catch (e) {
    throw new AuditFailure(`cannot open the SQLite audit log at ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }

  const kysely = new Kysely<AuditDb>({ dialect: new SqliteDialect({ database: db }) });
  return Object.freeze({
    kind: "sqlite" as const,
    db: kysely,
    writable: !readOnly,
    append: readOnly
      ? () => Promise.reject(new AuditFailure(`the SQLite audit log at ${path} was opened read-only`))
      : appender(db),
    prune: readOnly ? () => Promise.reject(new AuditFailure(`the SQLite audit log at ${path} was opened read-only`)) : pruner(db),
    close: async () => {
      if (!readOnly) db.pragma("optimize");
      // Kysely closes the database it was given only once it has used it.
      await kysely.destroy();
      if (db.open) db.close();
    },
  });
}

/** The audit_events indexes the log holds, with the condition each was made with (null for none). */
function indexConditions(db: Database.Database): { name: string; where: string | null }[] {
  const rows = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL").all() as { name: string; sql: string }[];
  // SQLite keeps each CREATE INDEX as it was written; ours end with their condition, if any.
  return rows.map((r) => ({ name: r.name, where: /\bWHERE\b(.*)$/is.exec(r.sql)?.[1] ?? null }));
}

/*
 * Committed links are immutable, so they can be remembered; most events share all but their last link. Those shared
 * links (roots, sessions, tasks) are few next to the per-call links that fill the table, so a small table holds them:
 * at 100,000 (some 35 MB) a gateway's heap stayed that much above its baseline after a load run had ended.
 */
const KNOWN_LINKS = 10_000;

/**
 * Prunes in one write transaction: the delete triggers are dropped and made
 * again inside it, so no other connection ever sees the log without them.
 */
function pruner(db: Database.Database): AuditBackend["prune"] {
  const run = db.transaction((rows: PruneRows): number => {
    for (const t of PRUNED_TABLES) db.exec(`DROP TRIGGER IF EXISTS ${t}_no_delete`);
    db.prepare("INSERT OR IGNORE INTO audit_retention (up_to, note, at) VALUES (?, ?, ?)").run(rows.record.up_to, rows.record.note, rows.record.at);
    if (rows.leaf !== null) db.prepare("INSERT OR IGNORE INTO audit_tree (level, idx, hash) VALUES (0, ?, ?)").run(rows.leaf.index, rows.leaf.hash);
    const deleted = db.prepare("DELETE FROM audit_events WHERE seq <= ?").run(rows.upTo).changes;
    db.prepare("DELETE FROM audit_event_links WHERE event_seq <= ?").run(rows.upTo);
    const keep = rows.keep.map(() => " AND NOT (level = ? AND idx = ?)").join("");
    db.prepare(`DELETE FROM audit_tree WHERE level > 0 AND ((idx + 1) << level) <= ?${keep}`).run(rows.upTo, ...rows.keep.flatMap((k) => [k.level, k.index]));
    db.prepare("DELETE FROM audit_tree WHERE level = 0 AND idx < ?").run(rows.upTo - 1);
    db.prepare("DELETE FROM audit_links WHERE NOT EXISTS (SELECT 1 FROM audit_event_links x WHERE x.link_num = audit_links.num)").run();
    for (const t of PRUNED_TABLES) db.exec(noDelete(t));
    return deleted;
  });
  return (rows) => {
    try {
      return Promise.resolve(run.immediate(rows));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new AuditFailure(`the SQLite audit store failed: ${String(e)}`));
    }
  };
}

function appender(db: Database.Database): AuditBackend["append"] {
  let statements: ReturnType<typeof prepare> | null = null;
  // The last prune this process saw: a prune may delete links, so the links remembered are forgotten after one.
  let prunedUpTo = 0;
  // The tree's right edge as this process last left it; reloaded when another process appended since.
  let frontier = new Frontier();
  const known = new Map<string, StoredLink>();
  const stored = (s: ReturnType<typeof prepare>, id: string): StoredLink | undefined => {
    const cached = known.get(id);
    if (cached !== undefined) return cached;
    const row = s.link.get(id) as { num: number; summary: string } | undefined;
    if (row === undefined) return undefined;
    const link = { num: row.num, text: row.summary };
    known.set(id, link);
    return link;
  };
  const load = (s: ReturnType<typeof prepare>, size: number): Frontier => {
    const nodes = frontierSlots(size).map(({ level, index }) => {
      const row = (level === 0 ? s.leaf.get(index + 1) : s.node.get(level, index)) as { hash: string } | undefined;
      if (row === undefined) throw new AuditFailure(`the audit log's Merkle tree lacks the subtree at level ${String(level)}, index ${String(index)}; run verify`);
      return { level, hash: Buffer.from(row.hash, "hex") };
    });
    return new Frontier(size, nodes);
  };
  const write = db.transaction((batch: readonly EncodedEvent[]): AppendPlan => {
    // Prepared on first use, not at open, so a schema broken after opening fails the write, not the open.
    const s = (statements ??= prepare(db));
    const pruned = (s.pruned.get() as { upTo: number | null }).upTo ?? 0;
    if (pruned !== prunedUpTo) {
      known.clear();
      prunedUpTo = pruned;
    }
    const head = (s.head.get() as ChainHead | undefined) ?? null;
    const size = head?.seq ?? 0;
    const plan = planAppend(head, frontier.size === size ? frontier.copy() : load(s, size), batch, {
      hasEntry: (id, phase) => s.hasEntry.get(id, phase) !== undefined,
      link: (id) => stored(s, id),
      lastLinkNum: (s.lastLinkNum.get() as { num: number | null }).num ?? 0,
    });
    for (const l of plan.links) s.insertLink.run(l.num, l.id, l.summary);
    for (const e of plan.events) s.insertEvent.run(EVENT_COLUMNS.map((c) => e[c]));
    for (const l of plan.eventLinks) s.insertEventLink.run(l.link_num, l.event_seq, l.position);
    for (const n of plan.tree) s.insertNode.run(n.level, n.idx, n.hash);
    return plan;
  });
  return (batch) => {
    let plan: AppendPlan;
    try {
      plan = write.immediate(batch);
    } catch (e) {
      // A failed statement can leave the prepared statements on a dropped table: prepare again next time.
      statements = null;
      return Promise.reject(e instanceof Error ? e : new AuditFailure(`the SQLite audit store failed: ${String(e)}`));
    }
    // Only now are the batch's new links and tree committed, and safe to remember.
    frontier = plan.frontier;
    if (known.size + plan.links.length > KNOWN_LINKS) known.clear();
    for (const l of plan.links) known.set(l.id, { num: l.num, text: l.summary });
    const appended: Appended = { results: plan.results, size: frontier.size, root: frontier.root() };
    return Promise.resolve(appended);
  };
}

function prepare(db: Database.Database) {
  return {
    head: db.prepare("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"),
    pruned: db.prepare("SELECT max(up_to) AS upTo FROM audit_retention"),
    hasEntry: db.prepare("SELECT 1 FROM audit_events WHERE id = ? AND phase = ?"),
    link: db.prepare("SELECT num, summary FROM audit_links WHERE id = ?"),
    lastLinkNum: db.prepare("SELECT max(num) AS num FROM audit_links"),
    leaf: db.prepare("SELECT leaf AS hash FROM audit_events WHERE seq = ?"),
    node: db.prepare("SELECT hash FROM audit_tree WHERE level = ? AND idx = ?"),
    insertLink: db.prepare("INSERT INTO audit_links (num, id, summary) VALUES (?, ?, ?)"),
    insertEvent: db.prepare(`INSERT INTO audit_events (${EVENT_COLUMNS.join(", ")}) VALUES (${EVENT_COLUMNS.map(() => "?").join(", ")})`),
    insertEventLink: db.prepare("INSERT INTO audit_event_links (link_num, event_seq, position) VALUES (?, ?, ?)"),
    insertNode: db.prepare("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)"),
  };
}
