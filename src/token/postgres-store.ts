import { randomUUID } from "node:crypto";
import type pg from "pg";
import { monotonicClock, requireOptional, type LedgerCharge } from "../kernel/internal.js";
import { AgentcapError, InvalidInput } from "../kernel/index.js";
import { revocationReason, targetKey, type RevocationTarget, type TokenStore } from "./store.js";

/** Options of the Postgres token store. */
export interface PostgresStoreOptions {
  /** A postgres:// URL, such as process.env.DATABASE_URL. */
  readonly connectionString: string;
  /** Schema holding the tables (created when missing); processes sharing it share revocations and budgets. */
  readonly schema?: string;
  /**
   * How long a lease on a block's allowance lasts without renewal (default
   * 30 000 ms). A live store renews its leases every third of it; a dead
   * process's leases are reclaimed by the next reserver once they expire.
   */
  readonly leaseTtlMs?: number;
  /** Share of a limit taken per lease (default 1/8; at least four calls, or all that is left). 1 takes all that is left. */
  readonly leaseShare?: number;
  /**
   * Calls of a lease recorded as spent in Postgres before they may be used
   * (default 4). These are what a process that dies loses for good (they may
   * have been used); the rest of its lease is reclaimed after expiry.
   */
  readonly armAhead?: number;
}

/**
 * The fewest calls a lease takes when that many are left. One tool call
 * spends at least two uses of every link (the call and its resource access),
 * so a one-call lease would refuse the very first tool call of a session.
 */
const MIN_LEASE_CALLS = 4;

interface Usage {
  calls: number;
  cost: number;
}

/**
 * What a notification says: only which row changed. Anyone who can connect
 * may NOTIFY the channel, so a note is a hint to re-read that row, never data.
 */
type Hint = { readonly revoke: { readonly kind: "block" | "link"; readonly id: string } } | { readonly usage: { readonly key: string } };

/** The hint a payload carries, or null for anything else (ignored: a forged or garbled payload changes nothing). */
function parseHint(payload: string | undefined): Hint | null {
  if (payload === undefined || payload.length > 1024) return null;
  let note: unknown;
  try {
    note = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof note !== "object" || note === null) return null;
  if (Object.hasOwn(note, "revoke")) {
    const r = (note as { revoke: unknown }).revoke;
    if (typeof r !== "object" || r === null) return null;
    const { kind, id } = r as { kind: unknown; id: unknown };
    return (kind === "block" || kind === "link") && typeof id === "string" ? { revoke: { kind, id } } : null;
  }
  if (Object.hasOwn(note, "usage")) {
    const u = (note as { usage: unknown }).usage;
    if (typeof u !== "object" || u === null) return null;
    const { key } = u as { key: unknown };
    return typeof key === "string" ? { usage: { key } } : null;
  }
  return null;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,40}$/;

/** This process's lease on one key's allowance, as last confirmed by Postgres. */
interface Lease {
  readonly limits: LedgerCharge;
  /** Units held (spent ones included), reclaimable by others only after expiry. */
  heldCalls: number;
  heldCost: number;
  /** Units recorded in Postgres as spent should this process die: charges may use only these. */
  armedCalls: number;
  armedCost: number;
  /** Units this process charged under the lease. */
  usedCalls: number;
  usedCost: number;
  /** monotonicClock.now() after which the lease may have expired: no charge after it until renewed. */
  deadline: number;
}

/**
 * A token store shared through Postgres, for several processes.
 *
 * The kernel checks synchronously, so this store answers from memory and
 * keeps memory current: revocations and charges are written to Postgres and
 * announced with NOTIFY; every store LISTENs and applies what others did,
 * typically within milliseconds. Revocation is therefore seen everywhere well
 * within a second. If the notification connection fails, the store fails
 * closed: every token link reads as revoked until it is reopened.
 *
 * Uses and budgets are exact across processes through leases. A limited
 * block's allowance lives in `token_allowance`; a process charges only units
 * it holds in a lease (`token_leases`), taken with the allowance row locked,
 * so no two processes ever hold the same unit. `prepare` (awaited by
 * `verifyShared`) takes the first lease; later ones are taken in the
 * background as a lease runs low, and a charge beyond what is held fails
 * (the kernel denies with BudgetExhausted) and asks for more. Of a lease,
 * only units first recorded as spent ("armed", `armAhead` calls ahead, and
 * all of a cost lease) can be charged, so a process that dies right after a
 * charge has never used a unit that Postgres would give back.
 *
 * The trade-off: units leased by a process that does not use them are not
 * available to other processes until it returns them (`close`) or the lease
 * expires (`leaseTtlMs`, renewed while the store is open), so another process
 * can be denied while the block still has room elsewhere. A single-use block
 * is leased whole: exactly one process can ever use it. A process that dies
 * loses its armed units for good (fail closed); the rest of its lease comes
 * back after expiry.
 */
export async function openPostgresTokenStore(options: PostgresStoreOptions): Promise<TokenStore> {
  const schema = options.schema ?? "agentcap";
  if (!IDENTIFIER.test(schema)) throw new InvalidInput(`schema ${JSON.stringify(schema)} must be a lower-case identifier of at most 41 characters`);
  if (typeof options.connectionString !== "string" || options.connectionString === "") {
    throw new InvalidInput("openPostgresTokenStore needs a connection string, such as process.env.DATABASE_URL");
  }
  const ttl = options.leaseTtlMs ?? 30_000;
  const share = options.leaseShare ?? 1 / 8;
  const armAhead = options.armAhead ?? 4;
  if (!Number.isInteger(ttl) || ttl < 10) throw new InvalidInput("leaseTtlMs must be a whole number of milliseconds, at least 10");
  if (!(share > 0 && share <= 1)) throw new InvalidInput("leaseShare must be more than 0 and at most 1");
  if (!Number.isInteger(armAhead) || armAhead < 1) throw new InvalidInput("armAhead must be a whole number, at least 1");
  const channel = `${schema}_token_events`;
  const origin = randomUUID();
  const { Client } = requireOptional("pg", "the Postgres token store") as typeof pg;
  const writer = new Client({ connectionString: options.connectionString });
  const listener = new Client({ connectionString: options.connectionString });
  const leaser = new Client({ connectionString: options.connectionString });
  await writer.connect();
  await listener.connect();
  await leaser.connect();

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
    await writer.query(`CREATE TABLE IF NOT EXISTS ${schema}.token_allowance (
      key TEXT PRIMARY KEY, max_calls BIGINT, max_cost DOUBLE PRECISION,
      calls_spent BIGINT NOT NULL DEFAULT 0, cost_spent DOUBLE PRECISION NOT NULL DEFAULT 0)`);
    await writer.query(`CREATE TABLE IF NOT EXISTS ${schema}.token_leases (
      key TEXT NOT NULL REFERENCES ${schema}.token_allowance (key), owner TEXT NOT NULL,
      calls_held BIGINT NOT NULL, cost_held DOUBLE PRECISION NOT NULL,
      calls_armed BIGINT NOT NULL, cost_armed DOUBLE PRECISION NOT NULL,
      expires_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (key, owner))`);
    await writer.query("COMMIT");
  } catch (e) {
    await writer.query("ROLLBACK");
    throw e;
  }

  // Re-reads run on the listener's own connection, in order; a failed re-read fails the store closed.
  const reread = async (hint: Hint): Promise<void> => {
    if ("revoke" in hint) {
      const { kind, id } = hint.revoke;
      const row = (await listener.query<{ reason: string }>(`SELECT reason FROM ${schema}.token_revocations WHERE kind = $1 AND id = $2`, [kind, id])).rows[0];
      if (row !== undefined && !revoked.has(`${kind}:${id}`)) revoked.set(`${kind}:${id}`, row.reason);
      return;
    }
    const { key } = hint.usage;
    const row = (await listener.query<{ calls: string; cost: number }>(`SELECT calls, cost FROM ${schema}.token_usage WHERE key = $1`, [key])).rows[0];
    if (row === undefined) return;
    // Counts only grow: the larger of the row and memory, since this process's own charges may not be written yet.
    const u = usage.get(key) ?? { calls: 0, cost: 0 };
    u.calls = Math.max(u.calls, Number(row.calls));
    u.cost = Math.max(u.cost, row.cost);
    usage.set(key, u);
  };
  listener.on("notification", (msg) => {
    if (msg.channel !== channel) return;
    const hint = parseHint(msg.payload);
    if (hint !== null) track(reread(hint));
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
  leaser.on("error", (e) => {
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

  // Writes after opening go one at a time too (pg warns about overlapping queries on one client).
  let writes: Promise<unknown> = Promise.resolve();
  const write = (text: string, values: unknown[]): Promise<unknown> => {
    const next = writes.then(() => writer.query(text, values));
    writes = next.catch(() => undefined);
    return next;
  };

  // Leases. Every lease operation runs on `leaser`, one at a time, so its transactions never interleave.
  const leases = new Map<string, Lease>();
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work);
    queue = next.catch(() => undefined);
    return next;
  };
  const transaction = async <T>(work: () => Promise<T>): Promise<T> => {
    await leaser.query("BEGIN");
    try {
      const result = await work();
      await leaser.query("COMMIT");
      return result;
    } catch (e) {
      await leaser.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
  };

  /**
   * Takes (more of) a lease on `limits.key`, renews it and arms what it may,
   * all with the allowance row locked; reclaims others' expired leases first.
   * `needCost` asks for at least that much cost room beyond what is unused.
   */
  const reserve = (limits: LedgerCharge, needCost: number): Promise<void> =>
    serial(() =>
      transaction(async () => {
        const { key } = limits;
        const sentAt = monotonicClock.now();
        await leaser.query(`INSERT INTO ${schema}.token_allowance (key, max_calls, max_cost) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`, [
          key,
          limits.maxCalls,
          limits.maxCost,
        ]);
        const allowance = (
          await leaser.query<{ max_calls: string | null; max_cost: number | null; calls_spent: string; cost_spent: number }>(
            `SELECT max_calls, max_cost, calls_spent, cost_spent FROM ${schema}.token_allowance WHERE key = $1 FOR UPDATE`,
            [key],
          )
        ).rows[0];
        if (allowance === undefined) throw new AgentcapError(`the token store's allowance row of ${key} vanished while it was locked`);
        // Expired leases of other owners: their armed units count as spent (they may have been used), the rest comes back.
        const reclaimed = (
          await leaser.query<{ calls: string; cost: number }>(
            `WITH gone AS (DELETE FROM ${schema}.token_leases WHERE key = $1 AND owner <> $2 AND expires_at <= now() RETURNING calls_armed, cost_armed)
             SELECT COALESCE(sum(calls_armed), 0) AS calls, COALESCE(sum(cost_armed), 0) AS cost FROM gone`,
            [key, origin],
          )
        ).rows[0] ?? { calls: "0", cost: 0 };
        const spentCalls = Number(allowance.calls_spent) + Number(reclaimed.calls);
        const spentCost = allowance.cost_spent + reclaimed.cost;
        if (Number(reclaimed.calls) > 0 || reclaimed.cost > 0) {
          await leaser.query(`UPDATE ${schema}.token_allowance SET calls_spent = $2, cost_spent = $3 WHERE key = $1`, [key, spentCalls, spentCost]);
        }
        const held = (
          await leaser.query<{ calls: string; cost: number }>(
            `SELECT COALESCE(sum(calls_held), 0) AS calls, COALESCE(sum(cost_held), 0) AS cost FROM ${schema}.token_leases WHERE key = $1`,
            [key],
          )
        ).rows[0] ?? { calls: "0", cost: 0 };
        let mine = leases.get(key);
        const ours = await leaser.query(`SELECT 1 FROM ${schema}.token_leases WHERE key = $1 AND owner = $2`, [key, origin]);
        if (mine !== undefined && ours.rowCount === 0) {
          // Reclaimed by another process after it expired (its armed units were counted as spent): start afresh.
          leases.delete(key);
          mine = undefined;
        }
        const maxCalls = allowance.max_calls === null ? null : Number(allowance.max_calls);
        const maxCost = allowance.max_cost;
        let heldCalls = mine?.heldCalls ?? 0;
        let heldCost = mine?.heldCost ?? 0;
        const usedCalls = mine?.usedCalls ?? 0;
        const usedCost = mine?.usedCost ?? 0;
        if (maxCalls !== null) {
          const room = maxCalls - spentCalls - Number(held.calls);
          const want = Math.max(MIN_LEASE_CALLS, Math.ceil(maxCalls * share));
          if (heldCalls - usedCalls < Math.max(1, Math.ceil(want / 2))) heldCalls += Math.max(0, Math.min(room, want));
        }
        if (maxCost !== null) {
          const room = maxCost - spentCost - held.cost;
          const want = Math.max(maxCost * share, needCost);
          if (heldCost - usedCost < Math.max(want / 2, needCost)) heldCost += Math.max(0, Math.min(room, want));
        }
        const armedCalls = Math.max(mine?.armedCalls ?? 0, Math.min(heldCalls, usedCalls + armAhead));
        const armedCost = heldCost;
        if (heldCalls === 0 && heldCost === 0 && mine === undefined) return;
        await leaser.query(
          `INSERT INTO ${schema}.token_leases (key, owner, calls_held, cost_held, calls_armed, cost_armed, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
           ON CONFLICT (key, owner) DO UPDATE SET calls_held = excluded.calls_held, cost_held = excluded.cost_held,
             calls_armed = excluded.calls_armed, cost_armed = excluded.cost_armed, expires_at = excluded.expires_at`,
          [key, origin, heldCalls, heldCost, armedCalls, armedCost, ttl / 1000],
        );
        // Postgres started this transaction after sentAt, so its expiry is no earlier than this deadline.
        const deadline = sentAt + ttl;
        if (mine === undefined) {
          leases.set(key, { limits, heldCalls, heldCost, armedCalls, armedCost, usedCalls, usedCost, deadline });
        } else {
          Object.assign(mine, { heldCalls, heldCost, armedCalls, armedCost, deadline });
        }
      }),
    );

  // One top-up per key at a time, in the background; a failure fails the store closed.
  const toppingUp = new Map<string, Promise<void>>();
  const topUp = (limits: LedgerCharge, needCost: number): Promise<void> => {
    const running = toppingUp.get(limits.key);
    if (running !== undefined) return running;
    const p = reserve(limits, needCost)
      .catch((e: unknown) => {
        fail(e instanceof Error ? e.message : String(e));
      })
      .finally(() => toppingUp.delete(limits.key));
    toppingUp.set(limits.key, p);
    return p;
  };
  const low = (l: Lease): boolean =>
    monotonicClock.now() > l.deadline - ttl / 2 ||
    (l.limits.maxCalls !== null && ((l.armedCalls < l.heldCalls && l.armedCalls - l.usedCalls <= armAhead / 2) || l.heldCalls - l.usedCalls <= Math.ceil(l.limits.maxCalls * share) / 2)) ||
    (l.limits.maxCost !== null && l.heldCost - l.usedCost <= (l.limits.maxCost * share) / 2);

  // Renews every lease a third of the way through its time, so an idle but live process keeps what it holds.
  const renewal = setInterval(() => {
    if (closed || leases.size === 0) return;
    const sentAt = monotonicClock.now();
    const keys = [...leases.keys()];
    track(
      serial(async () => {
        const { rows } = await leaser.query<{ key: string }>(
          `UPDATE ${schema}.token_leases SET expires_at = now() + make_interval(secs => $3) WHERE owner = $1 AND key = ANY($2) RETURNING key`,
          [origin, keys, ttl / 1000],
        );
        const renewed = new Set(rows.map((r) => r.key));
        for (const key of keys) {
          const l = leases.get(key);
          if (l === undefined) continue;
          // A lease not found was reclaimed after expiring (its armed units counted as spent): it is gone.
          if (renewed.has(key)) l.deadline = sentAt + ttl;
          else leases.delete(key);
        }
      }),
    );
  }, Math.max(5, Math.floor(ttl / 3)));
  renewal.unref();

  /** Gives back what this process holds and did not use; what it used becomes spent. */
  const release = (): Promise<void> =>
    serial(() =>
      transaction(async () => {
        for (const key of [...leases.keys()].sort()) {
          const l = leases.get(key) as Lease;
          await leaser.query(`SELECT 1 FROM ${schema}.token_allowance WHERE key = $1 FOR UPDATE`, [key]);
          await leaser.query(
            `WITH gone AS (DELETE FROM ${schema}.token_leases WHERE key = $1 AND owner = $2 RETURNING 1)
             UPDATE ${schema}.token_allowance SET calls_spent = calls_spent + $3, cost_spent = cost_spent + $4
             WHERE key = $1 AND EXISTS (SELECT 1 FROM gone)`,
            [key, origin, l.usedCalls, l.usedCost],
          );
        }
        leases.clear();
      }),
    );

  let closed = false;
  return Object.freeze({
    revokedReason(key: string, linkId: string): string | null {
      return failure ?? revoked.get(`block:${key}`) ?? revoked.get(`link:${linkId}`) ?? null;
    },
    usage(key: string): Usage {
      return usage.get(key) ?? { calls: 0, cost: 0 };
    },
    async prepare(entries: readonly LedgerCharge[]): Promise<void> {
      if (closed || failure !== null) return;
      await Promise.all(
        entries.map((e) => {
          const l = leases.get(e.key);
          return l !== undefined && !low(l) ? Promise.resolve() : topUp(e, 0);
        }),
      );
    },
    charge(entries: readonly LedgerCharge[], cost: number): boolean {
      if (failure !== null || closed) return false;
      const now = monotonicClock.now();
      let room = true;
      for (const e of entries) {
        const l = leases.get(e.key);
        const ok =
          l !== undefined &&
          now < l.deadline &&
          (e.maxCalls === null || l.usedCalls + 1 <= l.armedCalls) &&
          (e.maxCost === null || l.usedCost + cost <= l.armedCost);
        if (!ok) {
          room = false;
          void topUp(e, cost);
        }
      }
      // Only units held (and armed) here may be spent: without them the charge fails, closed, and more are asked for.
      if (!room) return false;
      for (const e of entries) {
        const l = leases.get(e.key) as Lease;
        l.usedCalls += 1;
        l.usedCost += cost;
        if (low(l)) void topUp(e, cost);
      }
      for (const e of entries) {
        const u = usage.get(e.key) ?? { calls: 0, cost: 0 };
        u.calls += 1;
        u.cost += cost;
        usage.set(e.key, u);
        track(
          write(
            `WITH up AS (INSERT INTO ${schema}.token_usage (key, calls, cost) VALUES ($1, 1, $2)
               ON CONFLICT (key) DO UPDATE SET calls = token_usage.calls + 1, cost = token_usage.cost + excluded.cost)
             SELECT pg_notify($3, $4)`,
            [e.key, cost, channel, JSON.stringify({ usage: { key: e.key } })],
          ),
        );
      }
      return true;
    },
    async revoke(target: RevocationTarget, reason = "revoked"): Promise<void> {
      const t = targetKey(target);
      if (typeof t === "string") throw new InvalidInput(t);
      const why = revocationReason(reason);
      await write(
        `WITH ins AS (INSERT INTO ${schema}.token_revocations (kind, id, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING)
         SELECT pg_notify($4, $5)`,
        [t.kind, t.id, why, channel, JSON.stringify({ revoke: { kind: t.kind, id: t.id } })],
      );
      // Only once it is committed: a revocation that failed to store must not look done here while others keep allowing.
      if (!revoked.has(`${t.kind}:${t.id}`)) revoked.set(`${t.kind}:${t.id}`, why);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(renewal);
      await Promise.all([...pending, ...toppingUp.values()]);
      if (failure === null) await release().catch(() => undefined);
      listener.removeAllListeners("end");
      await Promise.all([writer.end(), listener.end(), leaser.end()]);
    },
  });
}
