import type BetterSqlite3 from "better-sqlite3";
import { sqliteDeadline } from "./sqlite-deadline.js";
import { refused, tooMany, type BoundRead, type ChangeLimit, type DriverRow, type Engine, type Refusal, type Statement, type WriteOutcome } from "./engine.js";

/*
 * The embedded engine: better-sqlite3, synchronous. Each compiled shape
 * becomes one better-sqlite3 prepared statement, kept by the resource and
 * reused for every call of that shape.
 */

type Prepared = BetterSqlite3.Statement<unknown[], DriverRow>;

const REFUSALS: Readonly<Record<string, Refusal>> = {
  SQLITE_CONSTRAINT_UNIQUE: "unique",
  SQLITE_CONSTRAINT_PRIMARYKEY: "unique",
  SQLITE_CONSTRAINT_NOTNULL: "not-null",
  SQLITE_CONSTRAINT_FOREIGNKEY: "foreign-key",
  SQLITE_CONSTRAINT_CHECK: "check",
  SQLITE_MISMATCH: "value",
};

/** Runs `fn`, turning a refusal caused by the values given into InvalidInput; any other error is rethrown as is. */
function mapped<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
    const kind = typeof code === "string" && Object.hasOwn(REFUSALS, code) ? REFUSALS[code] : undefined;
    if (kind !== undefined) throw refused(kind, e);
    if (typeof code === "string" && code.startsWith("SQLITE_CONSTRAINT")) throw refused("check", e);
    throw e;
  }
}

/**
 * An engine over an open better-sqlite3 database. SQLite has no boolean type,
 * so booleans are stored as 1 and 0. With `timeoutMs`, every statement runs
 * under that time limit (see ./sqlite-deadline.ts for what it stops).
 */
export function sqliteEngine(db: BetterSqlite3.Database, timeoutMs: number | null): Engine {
  const deadline = timeoutMs === null ? null : sqliteDeadline(db, timeoutMs);
  const execute = (stmt: Prepared, params: readonly unknown[]): WriteOutcome => {
    if (stmt.reader) {
      const rows = stmt.all(...params);
      return { count: rows.length, rows };
    }
    return { count: stmt.run(...params).changes, rows: [] };
  };
  // Each statement this engine made, by the object it handed out: a write's prior read runs as the raw statement, inside the write's transaction and deadline.
  const raw = new WeakMap<Statement, Prepared>();
  // Rolled back by better-sqlite3 when the check throws.
  const bounded = db.transaction((stmt: Prepared, params: readonly unknown[], limit: ChangeLimit, before: BoundRead | null): WriteOutcome => {
    const prior = before === null ? null : rawOf(before.statement).all(...before.params);
    const outcome = execute(stmt, params);
    if (outcome.count > limit.max) throw tooMany(outcome.count, limit);
    return prior === null ? outcome : { ...outcome, before: prior };
  });
  const rawOf = (statement: Statement): Prepared => {
    const stmt = raw.get(statement);
    if (stmt === undefined) throw new TypeError("a statement of another engine was given to this SQLite engine");
    return stmt;
  };

  const engine: Engine = {
    dialect: "sqlite",
    synchronous: true,
    guard: deadline?.guard ?? null,
    prepare(sql: string, singleRow: boolean): Statement {
      const stmt: Prepared = db.prepare<unknown[], DriverRow>(sql);
      const statement: Statement = {
        // get() skips building the result array that all() needs: measurable on a one-row read.
        read: singleRow
          ? (params: readonly unknown[]) => {
              const row = stmt.get(...params);
              return row === undefined ? [] : [row];
            }
          : (params: readonly unknown[]) => stmt.all(...params),
        write: (params: readonly unknown[], limit: ChangeLimit | null, before: BoundRead | null = null) =>
          mapped(() => (limit === null ? execute(stmt, params) : bounded(stmt, params, limit, before))),
      };
      const made: Statement =
        deadline === null
          ? Object.freeze(statement)
          : Object.freeze({
              read: (params: readonly unknown[]) => deadline.run(() => statement.read(params) as DriverRow[]),
              write: (params: readonly unknown[], limit: ChangeLimit | null, before: BoundRead | null = null) => deadline.run(() => statement.write(params, limit, before) as WriteOutcome),
            });
      raw.set(made, stmt);
      return made;
    },
    encoder: (type) => (type === "boolean" ? (v) => (v === null ? null : v === true ? 1 : 0) : null),
    decoder: (type) => (type === "boolean" ? (v) => (v === null ? null : v !== 0) : null),
  };
  return Object.freeze(engine);
}
