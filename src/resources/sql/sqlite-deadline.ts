import { randomBytes } from "node:crypto";
import type BetterSqlite3 from "better-sqlite3";
import { timedOut } from "./engine.js";

/*
 * A time limit for SQLite statements. better-sqlite3 exposes neither
 * sqlite3_progress_handler nor sqlite3_interrupt, and runs each statement
 * synchronously on the caller's thread, so no timer can fire while one runs.
 * What it does expose is user functions, which SQLite calls from inside the
 * statement: the resource registers one that throws once the call's deadline
 * has passed, and every compiled WHERE clause calls it. SQLite evaluates the
 * WHERE clause for each row it examines (a function that is not
 * deterministic is never hoisted out of the loop), so a scan, a filter, an
 * aggregate's input, an update or a delete over many rows stops within 64
 * rows of the deadline, and the statement's changes are rolled back.
 *
 * What it cannot stop: work SQLite does without examining another row, such
 * as sorting rows already filtered for ORDER BY or GROUP BY, runs to its end
 * before the next check.
 */

class PastDeadline extends Error {}

/** How a statement is run under the limit, and the condition its WHERE clause must call. */
export interface SqliteDeadline {
  /** SQL calling the registered function: true, or an error once the deadline has passed. */
  readonly guard: string;
  /** Runs `fn` (which runs statements) with the deadline `ms` from now; a statement stopped by it throws LimitExceeded. */
  run<T>(fn: () => T): T;
}

/** Registers the deadline function on `db` under a name of its own, so resources with different limits on one database do not share it. */
export function sqliteDeadline(db: BetterSqlite3.Database, ms: number): SqliteDeadline {
  const name = `agentcap_within_deadline_${randomBytes(6).toString("hex")}`;
  let deadline = Number.POSITIVE_INFINITY;
  let examined = 0;
  db.function(name, { deterministic: false, directOnly: true }, () => {
    // Reading the clock on every row would cost more than most rows do; every 64th is enough.
    if ((examined++ & 63) === 0 && performance.now() > deadline) throw new PastDeadline();
    return 1;
  });
  return Object.freeze({
    guard: `${name}()`,
    run<T>(fn: () => T): T {
      deadline = performance.now() + ms;
      examined = 0;
      try {
        return fn();
      } catch (e) {
        if (e instanceof PastDeadline) throw timedOut(ms, e);
        throw e;
      } finally {
        deadline = Number.POSITIVE_INFINITY;
      }
    },
  });
}
