import { createHash } from "node:crypto";
import type { Pool, QueryConfig } from "pg";
import type { Scalar } from "../../kernel/index.js";
import { refused, timedOut, tooMany, type BoundRead, type ChangeLimit, type DriverRow, type Engine, type Refusal, type Statement, type WriteOutcome } from "./engine.js";
import { defined } from "../../kernel/internal.js";

/*
 * The server engine: node-postgres over a pool the application owns. Each
 * compiled shape runs as a named statement, which Postgres parses and plans
 * once per connection and then reuses.
 */

/**
 * Named statements stay prepared on every connection for its lifetime, so
 * their number is capped; shapes beyond the cap run unnamed (parsed per call).
 */
const MAX_NAMED = 1000;

const REFUSALS: Readonly<Record<string, Refusal>> = {
  "23505": "unique",
  "23502": "not-null",
  "23503": "foreign-key",
  "23514": "check",
};

/** SQLSTATE query_canceled: what Postgres reports for a statement stopped by statement_timeout. */
const CANCELED = "57014";

/**
 * The typed error for a refusal caused by the values given (SQLSTATE classes
 * 22 and 23, such as a number out of a column's range), or for a statement
 * stopped at the call's time limit; anything else unchanged.
 */
function mapped(e: unknown, timeoutMs: number | null): unknown {
  const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
  if (typeof code !== "string") return e;
  if (code === CANCELED && timeoutMs !== null) return timedOut(timeoutMs, e);
  if (Object.hasOwn(REFUSALS, code)) return refused(REFUSALS[code] as Refusal, e);
  if (code.startsWith("23")) return refused("check", e);
  if (code.startsWith("22")) return refused("value", e);
  return e;
}

/**
 * An engine over a node-postgres pool. The pool stays the application's: the
 * engine never ends it. With `timeoutMs`, every statement runs in a
 * transaction whose `statement_timeout` is set to it (SET LOCAL, so the
 * pooled connection keeps the application's own setting afterwards), and
 * Postgres cancels it there: two more round trips per call.
 */
export function postgresEngine(pool: Pool, timeoutMs: number | null): Engine {
  const named = new Set<string>();
  // Each statement this engine made, by the object it handed out, with what runs it: a write's prior read runs on the write's connection.
  const configs = new WeakMap<Statement, (values: readonly unknown[]) => QueryConfig>();

  /** Runs `config` in a transaction, under the time limit if there is one; `limit`: the most rows it may change, or null; `before`: a read to run first. */
  const transaction = async (config: QueryConfig, limit: ChangeLimit | null, before: BoundRead | null = null): Promise<WriteOutcome> => {
    const client = await pool.connect();
    // A connection whose ROLLBACK failed is in an unknown state: it is destroyed rather than returned to the pool.
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      try {
        if (timeoutMs !== null) await client.query("SELECT set_config('statement_timeout', $1, true)", [String(timeoutMs)]);
        const prior = before === null ? null : await client.query<DriverRow>(configOf(before.statement)(before.params));
        const result = await client.query<DriverRow>(config);
        const count = result.rowCount ?? 0;
        if (limit !== null && count > limit.max) throw tooMany(count, limit);
        await client.query("COMMIT");
        return prior === null ? { count, rows: result.rows } : { count, rows: result.rows, before: prior.rows };
      } catch (e) {
        await client.query("ROLLBACK").catch((err: unknown) => {
          broken = err instanceof Error ? err : new Error(String(err));
        });
        throw e;
      }
    } finally {
      client.release(broken);
    }
  };

  const configOf = (statement: Statement) => {
    const config = configs.get(statement);
    if (config === undefined) throw new TypeError("a statement of another engine was given to this Postgres engine");
    return config;
  };

  const engine: Engine = {
    dialect: "postgres",
    synchronous: false,
    guard: null,
    prepare(sql: string): Statement {
      // Named by the text's hash, so a shape prepared again (after the resource's cache let it go) reuses its name.
      const hash = `agentcap_${createHash("sha256").update(sql).digest("hex").slice(0, 32)}`;
      const name = named.has(hash) || named.size < MAX_NAMED ? hash : undefined;
      if (name !== undefined) named.add(name);
      const config = (values: readonly unknown[]): QueryConfig => ({ text: sql, values: values as unknown[], ...defined({ name }) });
      const statement: Statement = Object.freeze({
        read: async (params: readonly unknown[]) => {
          try {
            if (timeoutMs !== null) return (await transaction(config(params), null)).rows;
            return (await pool.query<DriverRow>(config(params))).rows;
          } catch (e) {
            throw mapped(e, timeoutMs);
          }
        },
        write: async (params: readonly unknown[], limit: ChangeLimit | null, before: BoundRead | null = null): Promise<WriteOutcome> => {
          try {
            if (limit !== null || timeoutMs !== null || before !== null) return await transaction(config(params), limit, before);
            const result = await pool.query<DriverRow>(config(params));
            return { count: result.rowCount ?? 0, rows: result.rows };
          } catch (e) {
            throw mapped(e, timeoutMs);
          }
        },
      });
      configs.set(statement, config);
      return statement;
    },
    encoder: () => null,
    // int8 and numeric columns arrive as strings, so that no precision is lost silently; fields declared as numbers get numbers.
    decoder: (type) => (type === "integer" || type === "real" ? (v) => (typeof v === "string" ? Number(v) : (v as Scalar)) : null),
  };
  return Object.freeze(engine);
}
