import type Database from "better-sqlite3";
import { ForeignFailure, InvalidInput } from "../kernel/index.js";
import { requireOptional } from "../kernel/internal.js";
import { createVault, type CredentialVault, type VaultOptions, type VaultRow } from "./vault.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS agentcap_credentials (
    principal TEXT NOT NULL,
    origin TEXT NOT NULL,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (principal, origin)
  );
`;

interface Row {
  readonly principal: string;
  readonly origin: string;
  readonly key_id: string;
  readonly sealed: string;
  readonly updated_at: number;
}

const rowOf = (r: Row): VaultRow => ({ principal: r.principal, origin: r.origin, keyId: r.key_id, sealed: r.sealed, updatedAt: r.updated_at });

/**
 * The credential vault in a SQLite file, by default the token store's own:
 * one row per principal and origin, the value sealed (AES-256-GCM) with a
 * key that is not in the file. Throws VaultKeyMissing without a key.
 */
export function openSqliteVault(path: string, options: VaultOptions): CredentialVault {
  if (typeof path !== "string" || path.length === 0) throw new InvalidInput("openSqliteVault needs a file path or :memory:");
  let statements: ReturnType<typeof prepare> | null = null;
  const use = () => statements as ReturnType<typeof prepare>;
  // The key is checked before the file is opened.
  const vault = createVault(
    {
      get: (principal, origin) => Promise.resolve(((r) => (r === undefined ? null : rowOf(r)))(use().select.get(principal, origin))),
      put: (row) => {
        use().upsert.run(row.principal, row.origin, row.keyId, row.sealed, row.updatedAt);
        return Promise.resolve();
      },
      delete: (principal, origin) => Promise.resolve(use().remove.run(principal, origin).changes > 0),
      all: () => Promise.resolve(use().selectAll.all().map(rowOf)),
      close: () => {
        use().db.close();
        return Promise.resolve();
      },
    },
    options,
  );
  const Driver = requireOptional("better-sqlite3", "the SQLite credential vault") as typeof Database;
  let db: Database.Database | null = null;
  try {
    db = new Driver(path);
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.exec(SCHEMA);
    statements = prepare(db);
  } catch (e) {
    db?.close();
    throw new ForeignFailure(`cannot open the SQLite credential vault ${JSON.stringify(path)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return vault;
}

function prepare(db: Database.Database) {
  return {
    db,
    select: db.prepare<[string, string], Row>("SELECT principal, origin, key_id, sealed, updated_at FROM agentcap_credentials WHERE principal = ? AND origin = ?"),
    selectAll: db.prepare<[], Row>("SELECT principal, origin, key_id, sealed, updated_at FROM agentcap_credentials ORDER BY principal, origin"),
    upsert: db.prepare(
      `INSERT INTO agentcap_credentials (principal, origin, key_id, sealed, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (principal, origin) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
    ),
    remove: db.prepare("DELETE FROM agentcap_credentials WHERE principal = ? AND origin = ?"),
  };
}
