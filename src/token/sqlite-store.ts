import type Database from "better-sqlite3";
import { InvalidInput, systemClock } from "../kernel/index.js";
import { requireOptional, type LedgerCharge } from "../kernel/internal.js";
import { revocationReason, targetKey, type RevocationTarget, type TokenStore } from "./store.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS agentcap_revocations (
    kind TEXT NOT NULL CHECK (kind IN ('block', 'link')),
    id TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
  );
  CREATE TABLE IF NOT EXISTS agentcap_usage (
    key TEXT PRIMARY KEY,
    calls INTEGER NOT NULL,
    cost REAL NOT NULL
  );
`;

interface UsageRow {
  readonly calls: number;
  readonly cost: number;
}

/**
 * The default token store: one SQLite file (or `:memory:`). Revocations are
 * cached in memory and reloaded at the first decision after another
 * connection committed a change to the file; charges run in an immediate transaction, so
 * processes sharing the file never overspend a budget between them.
 */
export function openSqliteTokenStore(path: string): TokenStore {
  if (typeof path !== "string" || path.length === 0) throw new InvalidInput("openSqliteTokenStore needs a file path or :memory:");
  const Driver = requireOptional("better-sqlite3", "the SQLite token store") as typeof Database;
  const db = new Driver(path);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.exec(SCHEMA);

  const selectRevoked = db.prepare<[], { kind: string; id: string; reason: string }>("SELECT kind, id, reason FROM agentcap_revocations");
  const insertRevoked = db.prepare("INSERT OR IGNORE INTO agentcap_revocations (kind, id, reason, revoked_at) VALUES (?, ?, ?, ?)");
  const selectUsage = db.prepare<[string], UsageRow>("SELECT calls, cost FROM agentcap_usage WHERE key = ?");
  const addUsage = db.prepare(
    "INSERT INTO agentcap_usage (key, calls, cost) VALUES (?, 1, ?) ON CONFLICT (key) DO UPDATE SET calls = calls + 1, cost = cost + excluded.cost",
  );
  const dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();

  let revoked = new Map<string, string>();
  let version = -1;
  // data_version changes when another connection commits to the file: one probe per decision, no clock involved.
  const refresh = () => {
    const v = dataVersion.get();
    if (v === version) return;
    version = v ?? -1;
    const next = new Map<string, string>();
    for (const row of selectRevoked.all()) next.set(`${row.kind}:${row.id}`, row.reason);
    revoked = next;
  };
  refresh();

  const charge = db.transaction((entries: readonly LedgerCharge[], cost: number): boolean => {
    for (const e of entries) {
      const used = selectUsage.get(e.key) ?? { calls: 0, cost: 0 };
      if (e.maxCalls !== null && used.calls >= e.maxCalls) return false;
      if (e.maxCost !== null && used.cost + cost > e.maxCost) return false;
    }
    for (const e of entries) addUsage.run(e.key, cost);
    return true;
  });

  let closed = false;
  return Object.freeze({
    refresh,
    revokedReason(key: string, linkId: string): string | null {
      return revoked.get(`block:${key}`) ?? revoked.get(`link:${linkId}`) ?? null;
    },
    usage(key: string): UsageRow {
      return selectUsage.get(key) ?? { calls: 0, cost: 0 };
    },
    charge(entries: readonly LedgerCharge[], cost: number): boolean {
      return charge.immediate(entries, cost);
    },
    // Async so that a bad target or reason rejects rather than throwing at the call.
    // eslint-disable-next-line @typescript-eslint/require-await
    async revoke(target: RevocationTarget, reason = "revoked"): Promise<void> {
      const t = targetKey(target);
      if (typeof t === "string") throw new InvalidInput(t);
      const why = revocationReason(reason);
      insertRevoked.run(t.kind, t.id, why, systemClock.now());
      if (!revoked.has(`${t.kind}:${t.id}`)) revoked.set(`${t.kind}:${t.id}`, why);
    },
    close(): Promise<void> {
      if (!closed) db.close();
      closed = true;
      return Promise.resolve();
    },
  });
}
