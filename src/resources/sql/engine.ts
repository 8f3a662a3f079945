import { InvalidInput, LimitExceeded, type Scalar } from "../../kernel/index.js";
import type { Dialect } from "./compile.js";
import type { FieldType } from "./schema.js";

/*
 * What the resource needs from a database, and nothing more: prepare a
 * compiled statement once, run it with bound values. Both engines implement
 * it; neither is exported from the package, so the only way to run SQL
 * through agentcap is the resource's structured queries.
 */

/** A row as the driver returns it: keyed by field name, values still in the driver's encoding. */
export type DriverRow = Record<string, unknown>;

/** What a write did: rows changed, and the rows its RETURNING clause produced. */
export interface WriteOutcome {
  readonly count: number;
  readonly rows: DriverRow[];
  /** The rows the read run before it returned, when it was given one. */
  readonly before?: DriverRow[];
}

/** A read to run in a write's transaction, right before the write: a statement of the same engine and its bound values. */
export interface BoundRead {
  readonly statement: Statement;
  readonly params: readonly unknown[];
}

/** The most rows one write may change, and the limit that sets it: the resource's maxWriteRows, or a db rule's maxRows when that is lower. */
export interface ChangeLimit {
  readonly max: number;
  readonly name: "maxWriteRows" | "maxRows";
}

/** The typed error for a write that would change more rows than its limit; the engine has rolled it back. */
export function tooMany(count: number, limit: ChangeLimit): LimitExceeded {
  const source = limit.name === "maxRows" ? "the capability's maxRows" : "maxWriteRows";
  return new LimitExceeded(`the change would affect ${count} rows; one call may change at most ${limit.max} (${source}); nothing was changed`, limit.name);
}

/** One prepared statement, reused for every call of its shape. */
export interface Statement {
  /** Runs a SELECT and returns its rows. */
  read(params: readonly unknown[]): DriverRow[] | Promise<DriverRow[]>;
  /**
   * Runs an INSERT, UPDATE or DELETE. With `limit`, it runs in a
   * transaction that is rolled back, and LimitExceeded thrown, when more rows
   * than that would change. With `before` (only with a limit), that read runs
   * first in the same transaction, and its rows are returned as `before`.
   */
  write(params: readonly unknown[], limit: ChangeLimit | null, before?: BoundRead | null): WriteOutcome | Promise<WriteOutcome>;
}

/** A database the resource can run compiled statements on. */
export interface Engine {
  readonly dialect: Dialect;
  /** Whether statements run synchronously (their read and write never return a promise), so the resource can offer `readSync`. */
  readonly synchronous: boolean;
  /**
   * A condition every compiled WHERE clause includes, evaluated by the
   * engine for each row it examines, or null. SQLite uses it to stop a
   * statement past its time limit (see ./statement-timeout.ts).
   */
  readonly guard: string | null;
  /** Prepares `sql` once; the text comes only from the compiler. `singleRow`: a read that returns at most one row. */
  prepare(sql: string, singleRow: boolean): Statement;
  /** Turns a field's value into what the driver binds, or null when it binds the value as is. */
  encoder(type: FieldType): ((value: Scalar) => unknown) | null;
  /** Turns what the driver returns for a field into its value, or null when nothing needs turning. */
  decoder(type: FieldType): ((value: unknown) => Scalar) | null;
}

/** The kinds of refusal a database reports for values it will not store or compare. */
export type Refusal = "unique" | "not-null" | "foreign-key" | "check" | "value";

const REFUSALS: Record<Refusal, string> = {
  unique: "another row already has that value of a unique field",
  "not-null": "a required field was left empty",
  "foreign-key": "a field refers to a row that does not exist, or the row is still referred to",
  check: "a value breaks one of the table's checks",
  value: "a value does not fit its column (out of range or wrong form)",
};

/**
 * The typed error for a statement the database refused because of the values
 * given. The driver's own message stays in `cause` for the application's
 * logs; the message names only the kind of refusal, not table internals.
 */
export function refused(kind: Refusal, cause: unknown): InvalidInput {
  return new InvalidInput(`the database refused the values given: ${REFUSALS[kind]}`, { cause });
}

/** The typed error for a statement the engine stopped at the call's time limit; nothing it would have changed was kept. */
export function timedOut(ms: number, cause?: unknown): LimitExceeded {
  return new LimitExceeded(`the statement ran longer than ${ms} ms (statementTimeoutMs) and was stopped; narrow the filter or ask for fewer rows`, "statementTimeoutMs", { cause });
}
