import { randomUUID } from "node:crypto";
import pg from "pg";
import { InvalidInput } from "../kernel/errors.ts";
import type { LedgerCharge } from "../kernel/ledger.ts";
import { targetKey, type RevocationTarget, type TokenStore } from "./store.ts";

/** Options of the Postgres token store. */
export interface PostgresStoreOptions {
  /** A postgres:// URL, such as process.env.DATABASE_URL. */
  readonly connectionString: string;
  /** Schema holding the tables (created when missing); processes sharing it share revocations and budgets. */
  readonly schema?: string;
}

interface Usage {
  calls: number;
  cost: number;
}

interface UsageNote {
  readonly origin: string;
  readonly key: string;
  readonly cost: number;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/;

/**
 * A token store shared through Postgres, for several processes.
 *
 * The kernel checks synchronously, so this store answers from memory and
 * keeps memory current: revocations and charges are written to Postgres and
 * announced with NOTIFY; every store LISTENs and applies what others did,
 * typically within milliseconds. Revocation is therefore seen everywhere well
 * within a second. Budgets are exact within a process and shared across
 * processes, but two processes charging the same block in the same few
 * milliseconds can together overspend by what they charged in that window.
 * If the notification connection fails, the store fails closed: every
 * token link reads as revoked until it is reopened.
 */
export async function openPostgresTokenStore(options: PostgresStoreOptions): Promise<TokenStore> {
  const schema = options.schema ?? "agentcap";
  if (!IDENTIFIER.test(schema)) throw new InvalidInput(`schema ${JSON.stringify(schema)} must be a lower-case identifier of at most 41 characters`);
  if (typeof options.connectionString !== "string" || options.connectionString === "") {
    throw new InvalidInput("openPostgresTokenStore needs a connection string, such as process.env.DATABASE_URL");
  }
  const channel = `${schema}_token_events`;
  const origin = randomUUID();
  const writer = new pg.Client({ connectionString: options.connectionString });
  const listener = new pg.Client({ connectionString: options.connectionString });
  await writer.connect();
  await listener.connect();

  const revoked = new Map<string, string>();
  const usage = new Map<string, Usage>();
  let failure: string | null = null;
  const pending = new Set<Promise<unknown>>();
  const fail = (why: string) => {
    failure ??= `the token store lost its connection to Postgres (${why}); reopen it`;
  };
  const track = (p: Promise<unknown>) => {
    const done = p.catch((e: unknown) => {
      fail(e instanceof Error ? e.message : String(e));
    });
    pending.add(done);
    void done.finally(() => pending.delete(done));
  };

  // IF NOT EXISTS is not safe against a second process creating the same tables at the same moment; the lock is.
  await writer.query("BEGIN");
  try {
    await writer.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`agentcap.tokens:${schema}`]);
    await writer.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await writer.query(`CREATE TABLE IF NOT EXISTS ${schema}.token_revocations (
      kind TEXT NOT NULL CHECK (kind IN ('block', 'link')), id TEXT NOT NULL, reason TEXT NOT NULL,
      revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (kind, id))`);
    await writer.query(`CREATE TABLE IF NOT EXISTS ${schema}.token_usage (key TEXT PRIMARY KEY, calls BIGINT NOT NULL, cost DOUBLE PRECISION NOT NULL)`);
    await writer.query("COMMIT");
  } catch (e) {
    await writer.query("ROLLBACK");
    throw e;
  }

  listener.on("notification", (msg) => {
    if (msg.channel !== channel || msg.payload === undefined) return;
    const note = JSON.parse(msg.payload) as { revoke?: { kind: string; id: string; reason: string }; usage?: UsageNote };
    if (note.revoke) {
      const k = `${note.revoke.kind}:${note.revoke.id}`;
      if (!revoked.has(k)) revoked.set(k, note.revoke.reason);
    }
    if (note.usage && note.usage.origin !== origin) {
      const u = usage.get(note.usage.key) ?? { calls: 0, cost: 0 };
      u.calls += 1;
      u.cost += note.usage.cost;
      usage.set(note.usage.key, u);
    }
  });
  listener.on("error", (e) => {
    fail(e.message);
  });
  listener.on("end", () => {
    fail("notification connection closed");
  });
  writer.on("error", (e) => {
    fail(e.message);
  });
  // Listen before loading, so nothing revoked in between is missed.
  await listener.query(`LISTEN ${channel}`);
  for (const row of (await writer.query<{ kind: string; id: string; reason: string }>(`SELECT kind, id, reason FROM ${schema}.token_revocations`)).rows) {
    revoked.set(`${row.kind}:${row.id}`, row.reason);
  }
  for (const row of (await writer.query<{ key: string; calls: string; cost: number }>(`SELECT key, calls, cost FROM ${schema}.token_usage`)).rows) {
    usage.set(row.key, { calls: Number(row.calls), cost: row.cost });
  }

  let closed = false;
  return Object.freeze({
    revokedReason(key: string, linkId: string): string | null {
      return failure ?? revoked.get(`block:${key}`) ?? revoked.get(`link:${linkId}`) ?? null;
    },
    usage(key: string): Usage {
      return usage.get(key) ?? { calls: 0, cost: 0 };
    },
    charge(entries: readonly LedgerCharge[], cost: number): boolean {
      if (failure !== null) return false;
      for (const e of entries) {
        const used = usage.get(e.key) ?? { calls: 0, cost: 0 };
        if (e.maxCalls !== null && used.calls >= e.maxCalls) return false;
        if (e.maxCost !== null && used.cost + cost > e.maxCost) return false;
      }
      for (const e of entries) {
        const u = usage.get(e.key) ?? { calls: 0, cost: 0 };
        u.calls += 1;
        u.cost += cost;
        usage.set(e.key, u);
        const note: UsageNote = { origin, key: e.key, cost };
        track(
          writer.query(
            `WITH up AS (INSERT INTO ${schema}.token_usage (key, calls, cost) VALUES ($1, 1, $2)
               ON CONFLICT (key) DO UPDATE SET calls = token_usage.calls + 1, cost = token_usage.cost + excluded.cost)
             SELECT pg_notify($3, $4)`,
            [e.key, cost, channel, JSON.stringify({ usage: note })],
          ),
        );
      }
      return true;
    },
    async revoke(target: RevocationTarget, reason = "revoked"): Promise<void> {
      const t = targetKey(target);
      if (typeof t === "string") throw new InvalidInput(t);
      const why = typeof reason === "string" ? reason : "revoked";
      revoked.set(`${t.kind}:${t.id}`, why);
      await writer.query(
        `WITH ins AS (INSERT INTO ${schema}.token_revocations (kind, id, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING)
         SELECT pg_notify($4, $5)`,
        [t.kind, t.id, why, channel, JSON.stringify({ revoke: { kind: t.kind, id: t.id, reason: why } })],
      );
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.all([...pending]);
      listener.removeAllListeners("end");
      await Promise.all([writer.end(), listener.end()]);
    },
  });
}
