import type Database from "better-sqlite3";
import { InvalidInput, type ApprovalEntry, type ApprovalStore, type ApprovalView } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { APPROVAL_STATUSES, entryOfRow, rowBody } from "./approval-rows.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS agentcap_approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN (${APPROVAL_STATUSES.map((s) => `'${s}'`).join(", ")})),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS agentcap_approvals_status ON agentcap_approvals (status, created_at);
`;

interface Row {
  readonly id: string;
  readonly version: number;
  readonly body: string;
}

/**
 * Approval requests in a SQLite file, shared by every process that opens
 * it (a gateway and the `agentcap approvals` command, for example); by
 * default the token store's own file. Each change is one UPDATE guarded by
 * the version it read, so of two processes changing one request at once,
 * exactly one succeeds and the other reads again.
 */
export function openSqliteApprovalStore(path: string): ApprovalStore {
  if (typeof path !== "string" || path.length === 0) throw new InvalidInput("openSqliteApprovalStore needs a file path or :memory:");
  const Driver = requireOptional("better-sqlite3", "the SQLite approval store") as typeof Database;
  const db = new Driver(path);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.exec(SCHEMA);
  const insert = db.prepare("INSERT INTO agentcap_approvals (id, status, created_at, expires_at, version, body) VALUES (?, ?, ?, ?, 1, ?)");
  const select = db.prepare<[string], Row>("SELECT id, version, body FROM agentcap_approvals WHERE id = ?");
  const selectAll = db.prepare<[number], Row>("SELECT id, version, body FROM agentcap_approvals ORDER BY created_at DESC, id LIMIT ?");
  const selectPending = db.prepare<[number], Row>("SELECT id, version, body FROM agentcap_approvals WHERE status = 'pending' ORDER BY created_at DESC, id LIMIT ?");
  const update = db.prepare("UPDATE agentcap_approvals SET status = ?, version = version + 1, body = ? WHERE id = ? AND version = ?");
  let closed = false;
  const open = () => {
    if (closed) throw new InvalidInput("the approval store is closed");
  };
  const read = (r: Row) => entryOfRow(r.id, r.body, r.version);
  // better-sqlite3 is synchronous: each method settles its promise after its statement has run.
  const run = <T>(f: () => T): Promise<T> =>
    new Promise<T>((resolve) => {
      open();
      resolve(f());
    });
  return Object.freeze({
    insert: (entry: Omit<ApprovalEntry, "version">) =>
      run(() => {
        insert.run(entry.view.id, entry.view.status, entry.view.createdAt, entry.view.expiresAt, rowBody(entry, entry.view));
      }),
    get: (id: string) =>
      run(() => {
        const row = select.get(id);
        return row === undefined ? null : read(row);
      }),
    list: ({ all, limit }: { readonly all: boolean; readonly limit: number }) => run(() => (all ? selectAll : selectPending).all(limit).map(read)),
    update: (id: string, version: number, view: ApprovalView) =>
      run(() => {
        const row = select.get(id);
        if (row === undefined) return false;
        return update.run(view.status, rowBody(read(row), view), id, version).changes === 1;
      }),
    close: () => {
      if (!closed) {
        closed = true;
        db.close();
      }
      return Promise.resolve();
    },
  });
}
