import { randomUUID } from "node:crypto";
import type Database from "better-sqlite3";
import { ForeignFailure, InvalidInput, StoreUnavailable, systemClock, type AuditSink } from "../kernel/index.js";
import { requireOptional, windowRefusal, type LedgerCharge, type WindowEntry, type WindowRefusal } from "../kernel/internal.js";
import { bookAnswers, NO_LINK, RevocationBook } from "./revocation-book.js";
import { performRevocation } from "./revoke.js";
import { droppableBefore, reinstateKey, TARGET_KINDS, type ReinstateTarget, type RevocationEntry, type RevocationTarget, type RevokeOptions, type TargetKind, type TokenStore } from "./store.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS agentcap_store (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS agentcap_revoked (
    kind TEXT NOT NULL CHECK (kind IN (${TARGET_KINDS.map((k) => `'${k}'`).join(", ")})),
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    reinstated_at INTEGER,
    expires_at INTEGER,
    PRIMARY KEY (kind, id)
  );
  CREATE TABLE IF NOT EXISTS agentcap_usage (
    key TEXT PRIMARY KEY,
    calls INTEGER NOT NULL,
    cost REAL NOT NULL
  );
  CREATE TABLE IF NOT EXISTS agentcap_rate_events (
    key TEXT NOT NULL,
    at INTEGER NOT NULL,
    cost REAL NOT NULL
  );
  CREATE INDEX IF NOT EXISTS agentcap_rate_events_key_at ON agentcap_rate_events (key, at);
`;

interface UsageRow {
  readonly calls: number;
  readonly cost: number;
}

interface RevokedRow {
  readonly kind: TargetKind;
  readonly id: string;
  readonly reason: string;
  readonly revoked_at: number;
  readonly reinstated_at: number | null;
  readonly expires_at: number | null;
}

/** Options of the SQLite token store. */
export interface SqliteStoreOptions {
  /** Where every revocation is recorded as an audit event (then `revoke` needs `{ by }`). */
  readonly audit?: AuditSink;
  /**
   * How often (ms) the store looks for revocations committed by another
   * process while something here waits to hear of one (a session, a
   * revocation signal), default 50. Decisions look at every one.
   */
  readonly watchIntervalMs?: number;
}

const entryOf = (r: RevokedRow): RevocationEntry => ({
  kind: r.kind,
  id: r.id,
  reason: r.reason,
  revokedAt: r.revoked_at,
  reinstatedAt: r.reinstated_at,
  expiresAt: r.expires_at,
});

/**
 * The default token store: one SQLite file (or `:memory:`). The revocation
 * list is cached in memory and reloaded at the first decision after another
 * connection committed a change to the file (`PRAGMA data_version`, probed
 * once per decision, no clock involved); charges run in an immediate
 * transaction, so processes sharing the file never overspend a budget or a
 * windowed rate between them (a window is counted by the capability's clock). The file holds the store's identity: tokens minted under it
 * verify only against it.
 */
export function openSqliteTokenStore(path: string, options: SqliteStoreOptions = {}): TokenStore {
  if (typeof path !== "string" || path.length === 0) throw new InvalidInput("openSqliteTokenStore needs a file path or :memory:");
  const watchInterval = options.watchIntervalMs ?? 50;
  if (!Number.isInteger(watchInterval) || watchInterval < 1) throw new InvalidInput("watchIntervalMs must be a whole number of milliseconds, at least 1");
  const Driver = requireOptional("better-sqlite3", "the SQLite token store") as typeof Database;
  // A path that cannot hold a database (a directory, a file of something else, a read-only place) is the caller's to fix: say which.
  let db: Database.Database | null = null;
  let id: string;
  try {
    db = new Driver(path);
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.exec(SCHEMA);
    db.prepare("INSERT OR IGNORE INTO agentcap_store (name, value) VALUES ('id', ?)").run(randomUUID());
    id = db.prepare<[], string>("SELECT value FROM agentcap_store WHERE name = 'id'").pluck().get() as string;
  } catch (e) {
    db?.close();
    throw new ForeignFailure(`cannot open the SQLite token store ${JSON.stringify(path)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }

  const selectRevoked = db.prepare<[], RevokedRow>("SELECT kind, id, reason, revoked_at, reinstated_at, expires_at FROM agentcap_revoked");
  const upsertRevoked = db.prepare(
    `INSERT INTO agentcap_revoked (kind, id, reason, revoked_at, reinstated_at, expires_at) VALUES (?, ?, ?, ?, NULL, ?)
     ON CONFLICT (kind, id) DO UPDATE SET reason = excluded.reason, revoked_at = excluded.revoked_at, reinstated_at = NULL,
       expires_at = CASE WHEN agentcap_revoked.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL ELSE max(agentcap_revoked.expires_at, excluded.expires_at) END`,
  );
  const reinstateRow = db.prepare("UPDATE agentcap_revoked SET reinstated_at = ? WHERE kind = ? AND id = ? AND reinstated_at IS NULL");
  const pruneRows = db.prepare("DELETE FROM agentcap_revoked WHERE expires_at IS NOT NULL AND expires_at <= ?");
  const countUsage = db.prepare<[], number>("SELECT count(*) FROM agentcap_usage").pluck();
  const selectUsage = db.prepare<[string], UsageRow>("SELECT calls, cost FROM agentcap_usage WHERE key = ?");
  const addUsage = db.prepare(
    "INSERT INTO agentcap_usage (key, calls, cost) VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET calls = calls + 1, cost = cost + excluded.cost",
  );
  const dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
  const pruneWindow = db.prepare("DELETE FROM agentcap_rate_events WHERE key = ? AND at <= ?");
  const windowTotals = db.prepare<[string, number], { readonly calls: number; readonly cost: number }>(
    "SELECT count(*) AS calls, total(cost) AS cost FROM agentcap_rate_events WHERE key = ? AND at > ?",
  );
  const windowEntries = db.prepare<[string, number], WindowEntry>("SELECT at, cost FROM agentcap_rate_events WHERE key = ? AND at > ? ORDER BY at, rowid");
  const addWindow = db.prepare("INSERT INTO agentcap_rate_events (key, at, cost) VALUES (?, ?, ?)");

  const book = new RevocationBook();
  const audit = options.audit ?? null;
  let version = -1;
  /*
   * data_version changes when another connection commits to the file: one
   * probe per decision, no clock involved. A file that cannot be read (its
   * table gone, the file damaged, the handle closed) leaves the store unable
   * to tell what is revoked: it fails closed until a probe and a whole
   * reload succeed again, at a later decision.
   */
  const refresh = () => {
    if (closed) return;
    try {
      const v = dataVersion.get();
      if (v === version && book.failure === null) return;
      const entries = selectRevoked.all().map(entryOf);
      version = v ?? -1;
      book.replace(entries);
      book.recover();
    } catch (e) {
      book.failClosed(`the token store cannot read its SQLite file (${e instanceof Error ? e.message : String(e)})`);
    }
  };
  let closed = false;
  pruneRows.run(droppableBefore(systemClock.now()));
  refresh();

  // While something waits to hear of a revocation (a session, a signal of work in flight), look for other processes' commits between decisions too.
  const watch = setInterval(() => {
    if (book.watched) refresh();
  }, watchInterval);
  watch.unref();

  /** Why one more request of `cost` does not fit the window of `e` ending at `now`, or null; the totals answer the common case without reading the log. */
  const windowRefused = (e: LedgerCharge & { readonly perMs: number }, now: number, cost: number): WindowRefusal | null => {
    const from = now - e.perMs;
    const totals = windowTotals.get(e.key, from) ?? { calls: 0, cost: 0 };
    if ((e.maxCalls === null || totals.calls + 1 <= e.maxCalls) && (e.maxCost === null || totals.cost + cost <= e.maxCost)) return null;
    return windowRefusal({ perMs: e.perMs, calls: e.maxCalls, cost: e.maxCost }, windowEntries.all(e.key, from), cost);
  };
  // Windows are counted in the file, in the same immediate transaction as uses and budgets, so connections and processes sharing it count one window.
  const charge = db.transaction((entries: readonly LedgerCharge[], cost: number, now: number): boolean => {
    for (const e of entries) {
      if (e.perMs !== undefined) {
        pruneWindow.run(e.key, now - e.perMs);
        if (windowRefused({ ...e, perMs: e.perMs }, now, cost) !== null) return false;
        continue;
      }
      const used = selectUsage.get(e.key) ?? { calls: 0, cost: 0 };
      if (e.maxCalls !== null && used.calls >= e.maxCalls) return false;
      if (e.maxCost !== null && used.cost + cost > e.maxCost) return false;
    }
    for (const e of entries) {
      if (e.perMs === undefined) addUsage.run(e.key, cost);
      // A window of cost alone needs no record of a request that cost nothing.
      else if (e.maxCalls !== null || cost > 0) addWindow.run(e.key, now, cost);
    }
    return true;
  });

  return Object.freeze({
    id,
    refresh,
    ...bookAnswers(book),
    usage(key: string): UsageRow {
      return selectUsage.get(key) ?? { calls: 0, cost: 0 };
    },
    rateRefusal(entry: LedgerCharge, now: number, cost: number): WindowRefusal | null {
      return entry.perMs === undefined ? null : windowRefused({ ...entry, perMs: entry.perMs }, now, cost);
    },
    charge(entries: readonly LedgerCharge[], cost: number, now: number): boolean {
      return charge.immediate(entries, cost, now);
    },
    revoke: (target: RevocationTarget, opts?: RevokeOptions) =>
      performRevocation(book, target, opts, audit, (entry) => {
        const now = systemClock.now();
        db.transaction(() => {
          pruneRows.run(droppableBefore(now));
          upsertRevoked.run(entry.kind, entry.id, entry.reason, entry.revokedAt, entry.expiresAt);
        }).immediate();
        book.prune(droppableBefore(now));
        return undefined;
      }),
    // Async so that a bad target rejects rather than throwing at the call.
    // eslint-disable-next-line @typescript-eslint/require-await
    async reinstate(target: ReinstateTarget): Promise<void> {
      const t = reinstateKey(target);
      const now = systemClock.now();
      reinstateRow.run(now, t.kind, t.id);
      book.reinstate(t.kind, t.id, now);
    },
    list: () => {
      refresh();
      const down = book.failure;
      return down === null ? Promise.resolve(book.entries()) : Promise.reject(new StoreUnavailable(`the revocation list cannot be read: ${down}`, NO_LINK));
    },
    stats: () => ({ revocations: book.size, usageKeys: countUsage.get() ?? 0, notifications: { received: 0, ignored: 0 }, polling: false }),
    close(): Promise<void> {
      if (!closed) {
        clearInterval(watch);
        db.close();
        // Closed, it would never hear of another process's revocation again: what it held is refused, not trusted.
        book.failClosed("the token store is closed");
      }
      closed = true;
      return Promise.resolve();
    },
  });
}
