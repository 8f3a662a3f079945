import { randomUUID } from "node:crypto";
import type pg from "pg";
import { AgentcapError, ForeignFailure, InvalidInput, systemClock, type AuditSink } from "../kernel/index.js";
import { monotonicClock, requireOptional, type LedgerCharge, type WindowRefusal } from "../kernel/internal.js";
import { LeaseBook, type LeasePlan } from "./lease-book.js";
import { RateBook, type Reservation, type WindowCharge } from "./rate-book.js";
import { createSchema, IDENTIFIER } from "./postgres-schema.js";
import { bookAnswers, RevocationBook } from "./revocation-book.js";
import { performRevocation } from "./revoke.js";
import { droppableBefore, reinstateKey, type ReinstateTarget, type RevocationEntry, type RevocationTarget, type RevokeOptions, type TargetKind, type TokenStore } from "./store.js";

/** Options of the Postgres token store. */
export interface PostgresStoreOptions {
  /** A postgres:// URL, such as process.env.DATABASE_URL. */
  readonly connectionString: string;
  /** Schema holding the tables (created when missing); processes sharing it share revocations and budgets. */
  readonly schema?: string;
  /** Where every revocation is recorded as an audit event (then `revoke` needs `{ by }`). */
  readonly audit?: AuditSink;
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
  /** While the notification connection is down: how often (ms) the revocation list is polled instead, default 200. */
  readonly pollIntervalMs?: number;
  /**
   * How long `revoke` waits (ms) for every other live store of the schema to
   * say it has applied the revocation, default 2000. A store that does not
   * answer in time is reported dead (no heartbeat) or slow; `revoke` resolves then anyway.
   */
  readonly ackTimeoutMs?: number;
}

interface Usage {
  calls: number;
  cost: number;
}

/**
 * What a notification says: only that something changed. Anyone who can
 * connect may NOTIFY the channel, so a note is a hint to re-read, never data.
 */
type Hint = { readonly revoke: true } | { readonly usage: { readonly key: string } };

/** The hint a payload carries, or null for anything else (ignored and counted: a forged or garbled payload changes nothing). */
export function parseHint(payload: string | undefined): Hint | null {
  if (payload === undefined || payload.length > 1024) return null;
  let note: unknown;
  try {
    note = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof note !== "object" || note === null) return null;
  if (Object.hasOwn(note, "revoke")) return { revoke: true };
  if (Object.hasOwn(note, "usage")) {
    const u = (note as { usage: unknown }).usage;
    if (typeof u !== "object" || u === null) return null;
    const { key } = u as { key: unknown };
    return typeof key === "string" ? { usage: { key } } : null;
  }
  return null;
}

interface RevokedRow {
  readonly kind: TargetKind;
  readonly id: string;
  readonly reason: string;
  readonly revoked_at: string;
  readonly reinstated_at: string | null;
  readonly expires_at: string | null;
  readonly seq: string;
}

const entryOf = (r: RevokedRow): RevocationEntry => ({
  kind: r.kind,
  id: r.id,
  reason: r.reason,
  revokedAt: Number(r.revoked_at),
  reinstatedAt: r.reinstated_at === null ? null : Number(r.reinstated_at),
  expiresAt: r.expires_at === null ? null : Number(r.expires_at),
});

/** A listener row whose heartbeat is older than this many heartbeats belongs to a dead process, and is not waited for. */
const HEARTBEATS_TO_DEATH = 5;

/**
 * A token store shared through Postgres, for several processes.
 *
 * The kernel checks synchronously, so this store answers from memory and
 * keeps memory current. Every revocation row carries a sequence number; a
 * store reads the rows newer than the last it saw whenever a notification
 * hints that something changed (NOTIFY carries no data: a forged or garbled
 * one is ignored and counted), and polls for them every `pollIntervalMs`
 * while its notification connection is down, reconnecting meanwhile, so a
 * revocation is never missed. After catching up a store records how far it
 * has read; `revoke` resolves once every other live store of the schema has
 * read its revocation (or `ackTimeoutMs` passed), so from then on no process
 * allows what it revoked. If the store cannot read at all (its connections
 * ended, Postgres restarted), it fails closed: everything it guards reads as
 * revoked, and sessions watching it are told so. Meanwhile it reconnects
 * every `pollIntervalMs`; once it has listened again and read every
 * revocation committed while it was away, it answers again, as a new
 * process would: what it had leased is given up as a dead process's lease is
 * (its armed units count as spent, the rest comes back after expiry).
 *
 * Uses and budgets are exact across processes through leases (see
 * lease-book.ts). A limited block's allowance lives in `token_allowance`; a
 * process charges only units it holds in a lease (`token_leases`), taken with
 * the allowance row locked, so no two processes ever hold the same unit.
 * `prepare` (awaited by `verifyShared`) takes the first lease; later ones are
 * taken in the background as a lease runs low, and a charge beyond what is
 * held fails (the kernel denies with BudgetExhausted) and asks for more.
 *
 * The trade-off: units leased by a process that does not use them are not
 * available to other processes until it returns them (`close`) or the lease
 * expires (`leaseTtlMs`, renewed while the store is open), so another process
 * can be denied while the block still has room elsewhere. A single-use block
 * is leased whole: exactly one process can ever use it. A process that dies
 * loses its armed units for good (fail closed); the rest of its lease comes
 * back after expiry.
 *
 * Windowed rates are reserved likewise (see rate-book.ts): a process charges
 * a rate only from room it reserved in the window, with the rate's row
 * locked, and a reservation stays counted for a window after its lease, so
 * the processes together never exceed the rate.
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
  const pollInterval = options.pollIntervalMs ?? 200;
  const ackTimeout = options.ackTimeoutMs ?? 2000;
  if (!Number.isInteger(ttl) || ttl < 10) throw new InvalidInput("leaseTtlMs must be a whole number of milliseconds, at least 10");
  if (!(share > 0 && share <= 1)) throw new InvalidInput("leaseShare must be more than 0 and at most 1");
  if (!Number.isInteger(armAhead) || armAhead < 1) throw new InvalidInput("armAhead must be a whole number, at least 1");
  if (!Number.isInteger(pollInterval) || pollInterval < 1) throw new InvalidInput("pollIntervalMs must be a whole number of milliseconds, at least 1");
  if (!Number.isInteger(ackTimeout) || ackTimeout < 0) throw new InvalidInput("ackTimeoutMs must be a whole number of milliseconds, zero or more");
  const heartbeatMs = Math.max(5, Math.min(1000, Math.floor(ttl / 3)));
  const channel = `${schema}_token_events`;
  // Who this store is to the others (listener and lease rows); a store that recovers from a lost connection takes a new name.
  let origin = randomUUID();
  const { Client } = requireOptional("pg", "the Postgres token store") as typeof pg;
  // Named, so an operator (or a test) can tell the notification connection in pg_stat_activity.
  const connect = async (role = "store"): Promise<pg.Client> => {
    const client = new Client({ connectionString: options.connectionString, application_name: `agentcap-tokens-${role}:${schema}` });
    await client.connect();
    return client;
  };
  // A server that cannot be reached, or a URL that names none, is the caller's to fix: say which store could not open.
  const opening: pg.Client[] = [];
  const openingFailed = async (e: unknown): Promise<never> => {
    await Promise.all(opening.map((c) => c.end().catch(() => undefined)));
    if (e instanceof AgentcapError) throw e;
    throw new ForeignFailure(`cannot open the Postgres token store in schema ${schema}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  };
  const connectOpening = (role?: string) =>
    connect(role).then((c) => {
      opening.push(c);
      return c;
    }, openingFailed);
  let writer = await connectOpening();
  let leaser = await connectOpening();
  let listener: pg.Client | null = await connectOpening("listener");

  const book = new RevocationBook();
  const audit = options.audit ?? null;
  const usage = new Map<string, Usage>();
  const notifications = { received: 0, ignored: 0 };
  let closed = false;
  const pending = new Set<Promise<unknown>>();
  const fail = (why: string) => {
    book.failClosed(`the token store lost its connection to Postgres (${why})`);
    recoverLater();
  };
  const track = (p: Promise<unknown>) => {
    const done = p.catch((e: unknown) => {
      if (!closed) fail(e instanceof Error ? e.message : String(e));
    });
    pending.add(done);
    void done.finally(() => pending.delete(done));
  };

  const id = await createSchema(writer, schema, randomUUID()).catch(openingFailed);

  // Writes after opening go one at a time (pg warns about overlapping queries on one client).
  let writes: Promise<unknown> = Promise.resolve();
  const write = <R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> => {
    const next = writes.then(() => writer.query<R>(text, values));
    writes = next.catch(() => undefined);
    return next;
  };

  /** Reads the revocation rows newer than the last seen, applies them, and records how far this store has read. */
  let seen = 0;
  let syncing: Promise<void> | null = null;
  let wanted = 0;
  let read = 0;
  const readNewer = async (): Promise<void> => {
    const { rows } = await write<RevokedRow>(
      `SELECT kind, id, reason, revoked_at, reinstated_at, expires_at, seq FROM ${schema}.token_revoked WHERE seq > $1 ORDER BY seq`,
      [seen],
    );
    for (const row of rows) book.add(entryOf(row));
    const last = rows.at(-1);
    if (last !== undefined) seen = Number(last.seq);
    book.prune(droppableBefore(systemClock.now()));
    await write(`UPDATE ${schema}.token_listeners SET seen = $2, heartbeat = now() WHERE owner = $1`, [origin, seen]);
  };
  // One read at a time; a request made during a read gets another read after it.
  const sync = (): Promise<void> => {
    wanted++;
    syncing ??= (async () => {
      try {
        while (read < wanted) {
          read = wanted;
          await readNewer();
        }
      } finally {
        // In the same step as the last look at `wanted`, so no request is left waiting on a finished read.
        syncing = null;
      }
    })();
    return syncing;
  };

  const onNotification = (msg: pg.Notification) => {
    if (msg.channel !== channel) return;
    notifications.received++;
    const hint = parseHint(msg.payload);
    if (hint === null) {
      notifications.ignored++;
      return;
    }
    if ("revoke" in hint) {
      track(sync());
      return;
    }
    track(rereadUsage(hint.usage.key));
  };
  const rereadUsage = async (key: string): Promise<void> => {
    const row = (await write<{ calls: string; cost: number }>(`SELECT calls, cost FROM ${schema}.token_usage WHERE key = $1`, [key])).rows[0];
    if (row === undefined) return;
    // Counts only grow: the larger of the row and memory, since this process's own charges may not be written yet.
    const u = usage.get(key) ?? { calls: 0, cost: 0 };
    u.calls = Math.max(u.calls, Number(row.calls));
    u.cost = Math.max(u.cost, row.cost);
    usage.set(key, u);
  };

  // While the notification connection is down: poll the list, and try to listen again.
  let poll: NodeJS.Timeout | null = null;
  const listen = async (client: pg.Client): Promise<void> => {
    client.on("notification", onNotification);
    client.on("error", () => {
      lost(client);
    });
    client.on("end", () => {
      lost(client);
    });
    await client.query(`LISTEN ${channel}`);
  };
  const lost = (client: pg.Client) => {
    if (closed || listener !== client) return;
    listener = null;
    client.removeAllListeners("notification");
    if (poll !== null) return;
    poll = setInterval(() => {
      track(
        (async () => {
          await sync();
          if (listener !== null || closed) return;
          const fresh = await connect("listener").catch(() => null);
          if (fresh === null) return;
          try {
            await listen(fresh);
          } catch {
            await fresh.end().catch(() => undefined);
            return;
          }
          listener = fresh;
          if (poll !== null) clearInterval(poll);
          poll = null;
          // Anything committed while reconnecting is read now.
          await sync();
        })().catch((e: unknown) => {
          // A failed poll means this store cannot tell what is revoked: fail closed.
          fail(e instanceof Error ? e.message : String(e));
        }),
      );
    }, pollInterval);
    poll.unref();
  };
  /** A lost writer or leaser fails the store closed; one already replaced is let go quietly. */
  const guard = (client: pg.Client): void => {
    client.on("error", (e) => {
      if (client === writer || client === leaser) fail(e.message);
    });
  };
  guard(writer);
  guard(leaser);

  /*
   * Recovery: new connections, listening before reading what was committed
   * meanwhile, under a new name (nothing this store leased before can be
   * trusted to be its own any more), then answering again.
   */
  let recovery: NodeJS.Timeout | null = null;
  let recovering = false;
  const recoverLater = (): void => {
    if (closed || recovery !== null) return;
    recovery = setInterval(() => {
      if (recovering) return;
      recovering = true;
      void recover().finally(() => {
        recovering = false;
      });
    }, pollInterval);
    recovery.unref();
  };
  const recover = async (): Promise<void> => {
    const fresh: pg.Client[] = [];
    try {
      for (const role of ["store", "store", "listener"]) fresh.push(await connect(role));
    } catch {
      await Promise.all(fresh.map((c) => c.end().catch(() => undefined)));
      return;
    }
    const [w, s, l] = fresh as [pg.Client, pg.Client, pg.Client];
    const old = [writer, leaser, listener];
    if (poll !== null) clearInterval(poll);
    poll = null;
    listener = null;
    writer = w;
    leaser = s;
    writes = Promise.resolve();
    queue = Promise.resolve();
    guard(w);
    guard(s);
    origin = randomUUID();
    leases.clear();
    windows.clear();
    try {
      await write(`INSERT INTO ${schema}.token_listeners (owner, seen) VALUES ($1, $2)`, [origin, seen]);
      await listen(l);
      listener = l;
      await sync();
    } catch {
      // Still down: these connections are dropped, the store stays closed, and the next attempt starts over.
      await Promise.all(fresh.map((c) => c.end().catch(() => undefined)));
      return;
    }
    for (const c of old) {
      c?.removeAllListeners("notification");
      c?.removeAllListeners("end");
      void c?.end().catch(() => undefined);
    }
    if (recovery !== null) clearInterval(recovery);
    recovery = null;
    if (!closed) book.recover();
  };
  // Listen before loading, so nothing revoked in between is missed.
  await write(`INSERT INTO ${schema}.token_listeners (owner, seen) VALUES ($1, 0)`, [origin]);
  await listen(listener);
  await sync();
  for (const row of (await write<{ key: string; calls: string; cost: number }>(`SELECT key, calls, cost FROM ${schema}.token_usage`, [])).rows) {
    usage.set(row.key, { calls: Number(row.calls), cost: row.cost });
  }

  /** Waits until every other live store has read up to `seq`, or the timeout passes. */
  const awaitAcks = async (seq: number): Promise<void> => {
    const until = monotonicClock.now() + ackTimeout;
    const alive = `${(heartbeatMs * HEARTBEATS_TO_DEATH) / 1000} seconds`;
    for (;;) {
      const waiting = (
        await write<{ n: string }>(
          `SELECT count(*) AS n FROM ${schema}.token_listeners WHERE owner <> $1 AND seen < $2 AND heartbeat > now() - $3::interval`,
          [origin, seq, alive],
        )
      ).rows[0];
      if (Number(waiting?.n ?? 0) === 0 || monotonicClock.now() >= until) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };

  // Leases. Every lease operation runs on `leaser`, one at a time, so its transactions never interleave.
  const leases = new LeaseBook({ ttlMs: ttl, share, armAhead });
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

  /** Takes (more of) a lease on `limits.key` as the lease book plans it, with the allowance row locked; reclaims others' expired leases first. */
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
        const ours = await leaser.query(`SELECT 1 FROM ${schema}.token_leases WHERE key = $1 AND owner = $2`, [key, origin]);
        const plan: LeasePlan | null = leases.plan(
          limits,
          {
            maxCalls: allowance.max_calls === null ? null : Number(allowance.max_calls),
            maxCost: allowance.max_cost,
            spentCalls,
            spentCost,
            heldCalls: Number(held.calls),
            heldCost: held.cost,
          },
          ours.rowCount !== 0,
          needCost,
        );
        if (plan === null) return;
        await leaser.query(
          `INSERT INTO ${schema}.token_leases (key, owner, calls_held, cost_held, calls_armed, cost_armed, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
           ON CONFLICT (key, owner) DO UPDATE SET calls_held = excluded.calls_held, cost_held = excluded.cost_held,
             calls_armed = excluded.calls_armed, cost_armed = excluded.cost_armed, expires_at = excluded.expires_at`,
          [key, origin, plan.heldCalls, plan.heldCost, plan.armedCalls, plan.armedCost, ttl / 1000],
        );
        // Postgres started this transaction after sentAt, so its expiry is no earlier than the lease book's deadline.
        leases.commit(limits, plan, sentAt);
      }),
    );

  /*
   * Windowed rates: room is reserved in a window with its key's row locked
   * (see rate-book.ts), on the same connection and queue as leases.
   */
  const windows = new RateBook({ ttlMs: ttl, share });
  /** Stops counting the rows of reservations that will charge nothing more beyond a window from now: what they did not use is given back. */
  const giveBack = (perMs: number, done: readonly Reservation[], query: (text: string, values: unknown[]) => Promise<unknown>): Promise<unknown> =>
    Promise.all(
      done.map((r) =>
        query(`UPDATE ${schema}.token_rate_slots SET calls = $2, cost = $3, until = least(until, now() + make_interval(secs => $4)) WHERE id = $1`, [
          r.id,
          r.calls === null ? null : r.usedCalls,
          r.cost === null ? null : r.usedCost,
          perMs / 1000,
        ]),
      ),
    );
  const reserveWindow = (entry: WindowCharge, needCost: number): Promise<void> =>
    serial(() =>
      transaction(async () => {
        const { key, perMs } = entry;
        const sentAt = monotonicClock.now();
        await leaser.query(`INSERT INTO ${schema}.token_rate_keys (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, [key]);
        await leaser.query(`SELECT 1 FROM ${schema}.token_rate_keys WHERE key = $1 FOR UPDATE`, [key]);
        await giveBack(perMs, windows.expire(key, sentAt), (t, v) => leaser.query(t, v));
        await leaser.query(`DELETE FROM ${schema}.token_rate_slots WHERE key = $1 AND until <= now()`, [key]);
        const { rows } = await leaser.query<{ calls: string | null; cost: number | null; until: string }>(
          `SELECT calls, cost, extract(epoch FROM until) * 1000 AS until FROM ${schema}.token_rate_slots WHERE key = $1`,
          [key],
        );
        const plan = windows.plan(
          entry,
          rows.map((r) => ({ calls: r.calls === null ? null : Number(r.calls), cost: r.cost, until: Number(r.until) })),
          needCost,
        );
        if ("retryAt" in plan) {
          windows.full(entry, plan.retryAt);
          return;
        }
        const inserted = await leaser.query<{ id: string }>(
          `INSERT INTO ${schema}.token_rate_slots (key, owner, calls, cost, until) VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING id`,
          [key, origin, plan.calls, plan.cost, (ttl + perMs) / 1000],
        );
        windows.add(entry, { id: (inserted.rows[0] as { id: string }).id, calls: plan.calls, cost: plan.cost }, sentAt);
      }),
    );

  // One top-up per key at a time, in the background; a failure fails the store closed.
  const toppingUp = new Map<string, Promise<void>>();
  const topUp = (limits: LedgerCharge, needCost: number): Promise<void> => {
    const running = toppingUp.get(limits.key);
    if (running !== undefined) return running;
    const p = (limits.perMs === undefined ? reserve(limits, needCost) : reserveWindow({ ...limits, perMs: limits.perMs }, needCost))
      .catch((e: unknown) => {
        fail(e instanceof Error ? e.message : String(e));
      })
      .finally(() => toppingUp.delete(limits.key));
    toppingUp.set(limits.key, p);
    return p;
  };

  // Renews every lease a third of the way through its time, so an idle but live process keeps what it holds; beats the listener's heart too.
  const renewal = setInterval(() => {
    if (closed) return;
    track(write(`UPDATE ${schema}.token_listeners SET heartbeat = now() WHERE owner = $1`, [origin]));
    if (leases.size === 0) return;
    const sentAt = monotonicClock.now();
    const keys = leases.keys();
    track(
      serial(async () => {
        const { rows } = await leaser.query<{ key: string }>(
          `UPDATE ${schema}.token_leases SET expires_at = now() + make_interval(secs => $3) WHERE owner = $1 AND key = ANY($2) RETURNING key`,
          [origin, keys, ttl / 1000],
        );
        // A lease not found was reclaimed after expiring (its armed units counted as spent): it is gone.
        leases.renewed(keys, new Set(rows.map((r) => r.key)), sentAt);
      }),
    );
  }, heartbeatMs);
  renewal.unref();

  /** Gives back what this process holds and did not use; what it used becomes spent. */
  const release = (): Promise<void> =>
    serial(() =>
      transaction(async () => {
        for (const key of leases.keys().sort()) {
          const l = leases.get(key);
          if (l === undefined) continue;
          await leaser.query(`SELECT 1 FROM ${schema}.token_allowance WHERE key = $1 FOR UPDATE`, [key]);
          await leaser.query(
            `WITH gone AS (DELETE FROM ${schema}.token_leases WHERE key = $1 AND owner = $2 RETURNING 1)
             UPDATE ${schema}.token_allowance SET calls_spent = calls_spent + $3, cost_spent = cost_spent + $4
             WHERE key = $1 AND EXISTS (SELECT 1 FROM gone)`,
            [key, origin, l.usedCalls, l.usedCost],
          );
        }
        leases.clear();
        for (const w of windows.entries()) await giveBack(w.perMs, w.reservations, (t, v) => leaser.query(t, v));
        windows.clear();
      }),
    );

  return Object.freeze({
    id,
    ...bookAnswers(book),
    usage(key: string): Usage {
      return usage.get(key) ?? { calls: 0, cost: 0 };
    },
    async prepare(entries: readonly LedgerCharge[]): Promise<void> {
      if (closed || book.failure !== null) return;
      const now = monotonicClock.now();
      await Promise.all(
        entries.map((e) => ((e.perMs === undefined ? leases.needsLease(e.key, now) : windows.needs(e.key, 0, now)) ? topUp(e, 0) : Promise.resolve())),
      );
    },
    rateRefusal(entry: LedgerCharge, _now: number, cost: number): WindowRefusal | null {
      // Windows shared between processes run on Postgres's clock (the wall clock), not the capability's.
      return entry.perMs === undefined ? null : windows.refusal({ ...entry, perMs: entry.perMs }, cost, monotonicClock.now(), systemClock.now());
    },
    charge(entries: readonly LedgerCharge[], cost: number): boolean {
      if (book.failure !== null || closed) return false;
      const now = monotonicClock.now();
      const totals = entries.filter((e) => e.perMs === undefined);
      const rated = totals.length === entries.length ? [] : entries.filter((e): e is WindowCharge => e.perMs !== undefined);
      // Only room reserved here may be spent: without it the charge fails, closed, and more is asked for. Windows are looked at first, as their charge cannot be undone.
      if (rated.some((e) => windows.needs(e.key, cost, now))) {
        for (const e of rated) if (windows.needs(e.key, cost, now)) void topUp(e, cost);
        return false;
      }
      // Only units held (and armed) here may be spent: without them the charge fails, closed, and more are asked for.
      const { charged, topUp: more } = leases.charge(totals, cost, now);
      for (const e of more) void topUp(e, cost);
      if (!charged) return false;
      if (rated.length > 0) {
        const windowCharge = windows.charge(rated, cost, now);
        for (const e of windowCharge.more) void topUp(e, cost);
        // A used-up reservation is counted only for a window after its last request.
        for (const s of windowCharge.spent) track(giveBack(s.perMs, [s.reservation], write));
      }
      for (const e of totals) {
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
    revoke: (target: RevocationTarget, opts?: RevokeOptions) =>
      performRevocation(book, target, opts, audit, async (entry) => {
        const { rows } = await write<{ seq: string }>(
          `WITH up AS (
             INSERT INTO ${schema}.token_revoked (kind, id, reason, revoked_at, reinstated_at, expires_at) VALUES ($1, $2, $3, $4, NULL, $5)
             ON CONFLICT (kind, id) DO UPDATE SET reason = excluded.reason, revoked_at = excluded.revoked_at, reinstated_at = NULL,
               expires_at = CASE WHEN token_revoked.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
                 ELSE greatest(token_revoked.expires_at, excluded.expires_at) END,
               seq = nextval('${schema}.token_revocation_seq')
             RETURNING seq)
           SELECT seq, pg_notify($6, '{"revoke":true}') FROM up`,
          [entry.kind, entry.id, entry.reason, entry.revokedAt, entry.expiresAt, channel],
        );
        await write(`DELETE FROM ${schema}.token_revoked WHERE expires_at IS NOT NULL AND expires_at <= $1`, [droppableBefore(systemClock.now())]);
        await awaitAcks(Number(rows[0]?.seq ?? 0));
      }),
    async reinstate(target: ReinstateTarget): Promise<void> {
      const t = reinstateKey(target);
      await write(
        `WITH up AS (UPDATE ${schema}.token_revoked SET reinstated_at = $3, seq = nextval('${schema}.token_revocation_seq')
           WHERE kind = $1 AND id = $2 AND reinstated_at IS NULL RETURNING 1)
         SELECT pg_notify($4, '{"revoke":true}') FROM up`,
        [t.kind, t.id, systemClock.now(), channel],
      );
      await sync();
    },
    async list(): Promise<readonly RevocationEntry[]> {
      await sync();
      return book.entries();
    },
    stats: () => ({ revocations: book.size, usageKeys: usage.size, notifications: { ...notifications }, polling: poll !== null }),
    async close(): Promise<void> {
      if (closed) return;
      clearInterval(renewal);
      if (poll !== null) clearInterval(poll);
      if (recovery !== null) clearInterval(recovery);
      await Promise.all([...pending, ...toppingUp.values()]);
      if (book.failure === null) await release().catch(() => undefined);
      await write(`DELETE FROM ${schema}.token_listeners WHERE owner = $1`, [origin]).catch(() => undefined);
      closed = true;
      // Closed, it would never hear of another process's revocation again: what it held is refused, not trusted.
      book.failClosed("the token store is closed");
      const l = listener;
      listener = null;
      l?.removeAllListeners("end");
      await Promise.all([writer.end(), leaser.end(), l?.end()]);
    },
  });
}
